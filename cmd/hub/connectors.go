package main

import (
	"context"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// connectorsCmd is "hub connectors list": the apps of the connector catalog.
func connectorsCmd(g *globals, out io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "connectors", Short: "The connector catalog (the apps a connection can be made to)"}
	list := &cobra.Command{Use: "list", Short: "List the connectors (every page), by name", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			all := &connectionsv1.ListConnectorsResponse{}
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) error {
				cs := connectionsv1.NewConnectionServiceClient(cc)
				for tok := ""; ; {
					page, err := cs.ListConnectors(ctx, &connectionsv1.ListConnectorsRequest{PageSize: 1000, PageToken: tok})
					if err != nil {
						return err
					}
					all.Connectors = append(all.Connectors, page.GetConnectors()...)
					if tok = page.GetNextPageToken(); tok == "" {
						return nil
					}
				}
			}); err != nil {
				return err
			}
			return g.print(out, all, "NAME\tDISPLAY NAME\tAUTH TYPES\tDEFAULT BASE URL", func(add func(...string)) {
				for _, x := range all.GetConnectors() {
					var auth []string
					for _, a := range x.GetAuthTypes() {
						auth = append(auth, strings.ToLower(short(a, "AUTH_TYPE_")))
					}
					add(x.GetName(), x.GetDisplayName(), strings.Join(auth, ","), x.GetDefaultBaseUrl())
				}
			})
		}}
	cmd.AddCommand(list)
	return cmd
}
