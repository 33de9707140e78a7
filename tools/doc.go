// Package tools pins the project's command-line tools (buf, the protoc
// plugins, helm) as Go tool dependencies, so that `go tool buf` runs the same
// version on every machine. The Vault CLI build lives in ./vault, a module of
// its own kept out of go.work.
package tools
