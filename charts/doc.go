// Package charts holds the tests of the Helm charts in this directory: connections (the
// connection service), broker (the credential broker) and integrationhub (the umbrella chart).
// The tests render every chart with Helm's SDK, once with its defaults and once per
// ci/*-values.yaml scenario, and check what comes out.
package charts
