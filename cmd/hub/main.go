// Command hub is the command line for platform engineers and operators of
// the connections layer, on the generated gRPC clients:
//
//	hub connections list|get|create|update|test|delete
//	hub recipes register|bind|unbind|usage
//	hub runtime-users list|create|delete
//	hub audit list, hub access list, hub watch
//	hub reconcile [--dry-run]    the write protocol's reconciler report (and repair)
//	hub jobs mint-token          a job token, as the job scheduler mints it
//	hub credential get           what a recipe worker gets (the secret only with --show-secret)
//	hub connectors list          the connector catalog (the apps)
//	hub dev                      the local stack, a demo, and ready-to-paste commands
//
// Output is a table for people, or JSON (-o json) for scripts; a command
// that changes something and has nothing to tabulate prints one line (with
// -o json, its answer as a JSON object). Flags left unset take their
// environment variables (HUB_CONNECTIONS_ADDR, HUB_BROKER_ADDR, HUB_TOKEN,
// HUB_JOB_TOKEN) when the command runs; help never shows their values.
// Exit codes: 0 done, 1 other failure, 2 bad usage, 3 not found, 4 not
// permitted (no or a refused token), 5 unavailable (retry later), 6 refused
// as the request stands (a precondition, a conflict, bad input: also a flag,
// argument or secret that is not valid UTF-8, refused before any call).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr *os.File) int {
	root := newRoot(stdout)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "hub:", err)
	return exitCode(err)
}
