// Package servicemain is what each service's main does around its own run:
// it stops the run on SIGINT or SIGTERM (Kubernetes' stop), and exits 1 with
// the error on stderr when the run fails (-h, which prints the usage, is not
// a failure).
package servicemain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Run runs run with the command-line arguments and a context that ends on
// SIGINT or SIGTERM, and exits 1 if it fails; name prefixes the error.
func Run(name string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the usage was printed, as asked
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
