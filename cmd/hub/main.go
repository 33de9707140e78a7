// Command hub is the project's developer CLI.
//
//	hub dev    start the local stack (Vault dev server, broker, connection
//	           service on SQLite), run a short demo, and serve until interrupted
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hub:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: hub dev")
	}
	switch args[0] {
	case "dev":
		return runDev(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q; usage: hub dev", args[0])
}
