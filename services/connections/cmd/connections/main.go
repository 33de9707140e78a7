// Command connections is the connection service: it owns connection metadata
// and forwards secrets to the credential broker.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/integrationhub/connections/internal/servicemain"
	"github.com/integrationhub/connections/services/connections/internal/config"
	"github.com/integrationhub/connections/services/connections/internal/server"
)

func main() { servicemain.Run("connections", run) }

func run(ctx context.Context, args []string) error {
	cfg, err := config.Load(args)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return server.Run(ctx, cfg, logger)
}
