// Package childproc ties the processes the dev stack and the tests start
// (Vault, the broker, the connection service) to the process that started
// them, so that a test binary killed by its timeout, or a `hub dev` killed
// with -9, leaves no servers running behind it to load the machine and hold
// its ports.
package childproc
