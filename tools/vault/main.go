// Command vault is the real HashiCorp Vault CLI and server, compiled from the
// Go module proxy so that local runs and tests need nothing installed by hand.
//
// It lives in a module of its own, outside go.work, so that the workspace's
// version selection never changes Vault's dependency graph. Build it with
// scripts/vault-build.sh, which caches the binary per version.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
