// Command broker is the credential broker: it keeps connection secrets in
// Vault and serves credentials to recipe workers.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/integrationhub/connections/broker/internal/config"
	"github.com/integrationhub/connections/broker/internal/server"
	"github.com/integrationhub/connections/internal/servicemain"
)

func main() { servicemain.Run("broker", run) }

func run(ctx context.Context, args []string) error {
	cfg, err := config.Load(args)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return server.Run(ctx, cfg, logger)
}
