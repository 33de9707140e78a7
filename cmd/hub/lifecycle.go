package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

// connectionLifecycle adds disconnect and promote to "hub connections".
func connectionLifecycle(g *globals, cmd *cobra.Command, out io.Writer) {
	show := func(x *connectionsv1.Connection) error {
		return g.print(out, x, "ID\tNAME\tENVIRONMENT\tSTATUS\tETAG", func(add func(...string)) {
			add(x.GetId(), x.GetName(), short(x.GetEnvironment(), "ENVIRONMENT_"), short(x.GetStatus(), "CONNECTION_STATUS_"), x.GetEtag())
		})
	}
	var etag string
	disconnect := &cobra.Command{Use: "disconnect ID", Short: "Remove a connection's credentials; its id and bindings stay (reconnect with update --secret-stdin)",
		Args: exactArgs(1), RunE: func(c *cobra.Command, args []string) error {
			var resp *connectionsv1.DisconnectConnectionResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).DisconnectConnection(ctx, &connectionsv1.DisconnectConnectionRequest{Id: args[0], Etag: etag})
				return err
			}); err != nil {
				return err
			}
			return show(resp.GetConnection())
		}}
	disconnect.Flags().StringVar(&etag, "etag", "", "the etag the change is based on")

	var name, username, baseURL, subdomain string
	var fromStdin bool
	promote := &cobra.Command{Use: "promote ID", Short: "Make a production connection from a sandbox one, with a new secret from standard input (--secret-stdin)",
		Args: exactArgs(1), RunE: func(c *cobra.Command, args []string) error {
			req := &connectionsv1.PromoteConnectionRequest{Id: args[0], Name: name}
			if baseURL != "" || subdomain != "" {
				req.Instance = &credentialv1.AppInstance{BaseUrl: baseURL, Subdomain: subdomain}
			}
			var resp *connectionsv1.PromoteConnectionResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) error {
				cs := connectionsv1.NewConnectionServiceClient(cc)
				if fromStdin {
					src, err := cs.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: args[0]})
					if err != nil {
						return err
					}
					if req.Secret, err = secretFor(src.GetConnection().GetAuthType(), username, c.InOrStdin()); err != nil {
						return err
					}
				}
				var err error
				resp, err = cs.PromoteConnection(ctx, req)
				return err
			}); err != nil {
				return err
			}
			return show(resp.GetConnection())
		}}
	f := promote.Flags()
	f.StringVar(&name, "name", "", "the production connection's name (default: the sandbox one's)")
	f.StringVar(&baseURL, "base-url", "", "the production app instance's base URL (default: the sandbox one's)")
	f.StringVar(&subdomain, "subdomain", "", "the production app instance's subdomain")
	f.StringVar(&username, "username", "", "username (basic auth)")
	f.BoolVar(&fromStdin, "secret-stdin", false, "read the production API key or password from standard input")
	cmd.AddCommand(disconnect, promote)
}

// webhookEventNames are the --events words.
var webhookEventNames = map[string]connectionsv1.WebhookEventType{
	"invalid":      connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_INVALID,
	"reauthorized": connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_REAUTHORIZED,
	"deleted":      connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_DELETED,
	"check_failed": connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_CHECK_FAILED,
}

func webhooksCmd(g *globals, out io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "webhooks", Short: "A workspace's webhooks and their deliveries"}
	var ws, url, events string
	events = "invalid,reauthorized,deleted,check_failed"
	rpc := func(c *cobra.Command, f func(context.Context, connectionsv1.ConnectionServiceClient) error) error {
		return g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) error {
			return f(ctx, connectionsv1.NewConnectionServiceClient(cc))
		})
	}
	create := &cobra.Command{Use: "create", Short: "Subscribe a URL to connection events; prints the signing secret, which is never shown again",
		Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
			req := &connectionsv1.CreateWebhookRequest{WorkspaceId: ws, Url: url}
			for _, e := range strings.Split(events, ",") {
				v, ok := webhookEventNames[strings.TrimSpace(e)]
				if !ok {
					return usageError{fmt.Errorf("--events: %q is not one of invalid, reauthorized, deleted, check_failed", e)}
				}
				req.Events = append(req.Events, v)
			}
			var resp *connectionsv1.CreateWebhookResponse
			if err := rpc(c, func(ctx context.Context, cs connectionsv1.ConnectionServiceClient) (err error) {
				resp, err = cs.CreateWebhook(ctx, req)
				return err
			}); err != nil {
				return err
			}
			h := resp.GetWebhook()
			return g.print(out, resp, "ID\tURL\tSIGNING SECRET (shown once)", func(add func(...string)) {
				add(h.GetId(), h.GetUrl(), resp.GetSigningSecret())
			})
		}}
	create.Flags().StringVar(&url, "url", "", "where deliveries are POSTed")
	create.Flags().StringVar(&events, "events", events, "comma-separated: invalid, reauthorized, deleted, check_failed")

	list := &cobra.Command{Use: "list", Short: "A workspace's webhooks", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var resp *connectionsv1.ListWebhooksResponse
			if err := rpc(c, func(ctx context.Context, cs connectionsv1.ConnectionServiceClient) (err error) {
				resp, err = cs.ListWebhooks(ctx, &connectionsv1.ListWebhooksRequest{WorkspaceId: ws})
				return err
			}); err != nil {
				return err
			}
			return g.print(out, resp, "ID\tURL\tEVENTS\tCREATED", func(add func(...string)) {
				for _, h := range resp.GetWebhooks() {
					var names []string
					for _, e := range h.GetEvents() {
						names = append(names, strings.ToLower(short(e, "WEBHOOK_EVENT_TYPE_CONNECTION_")))
					}
					add(h.GetId(), h.GetUrl(), strings.Join(names, ","), h.GetCreateTime().AsTime().Format(time.RFC3339))
				}
			})
		}}

	del := &cobra.Command{Use: "delete ID", Short: "Delete a webhook and its signing secret", Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var resp *connectionsv1.DeleteWebhookResponse
			if err := rpc(c, func(ctx context.Context, cs connectionsv1.ConnectionServiceClient) (err error) {
				resp, err = cs.DeleteWebhook(ctx, &connectionsv1.DeleteWebhookRequest{WorkspaceId: ws, WebhookId: args[0]})
				return err
			}); err != nil {
				return err
			}
			return g.done(out, resp, "deleted webhook %s", args[0])
		}}

	var limit int32
	deliveries := &cobra.Command{Use: "deliveries WEBHOOK_ID", Short: "A webhook's deliveries, newest first, with their attempts", Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var resp *connectionsv1.ListWebhookDeliveriesResponse
			if err := rpc(c, func(ctx context.Context, cs connectionsv1.ConnectionServiceClient) (err error) {
				resp, err = cs.ListWebhookDeliveries(ctx, &connectionsv1.ListWebhookDeliveriesRequest{WorkspaceId: ws, WebhookId: args[0], PageSize: limit})
				return err
			}); err != nil {
				return err
			}
			return g.print(out, resp, "ID\tEVENT\tCONNECTION\tSTATE\tATTEMPTS\tLAST RESULT", func(add func(...string)) {
				for _, d := range resp.GetDeliveries() {
					last := ""
					if a := d.GetAttempts(); len(a) > 0 {
						if last = a[len(a)-1].GetError(); last == "" {
							last = fmt.Sprint(a[len(a)-1].GetHttpStatus())
						}
					}
					add(d.GetId(), strings.ToLower(short(d.GetEventType(), "WEBHOOK_EVENT_TYPE_CONNECTION_")), d.GetConnectionId(),
						short(d.GetState(), "WEBHOOK_DELIVERY_STATE_"), fmt.Sprint(len(d.GetAttempts())), last)
				}
			})
		}}
	deliveries.Flags().Int32Var(&limit, "limit", 50, "how many (at most 500)")

	redeliver := &cobra.Command{Use: "redeliver DELIVERY_ID", Short: "Send a delivery again (same webhook-id)", Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var resp *connectionsv1.RedeliverWebhookResponse
			if err := rpc(c, func(ctx context.Context, cs connectionsv1.ConnectionServiceClient) (err error) {
				resp, err = cs.RedeliverWebhook(ctx, &connectionsv1.RedeliverWebhookRequest{WorkspaceId: ws, DeliveryId: args[0]})
				return err
			}); err != nil {
				return err
			}
			return g.done(out, resp, "queued delivery %s again", args[0])
		}}
	for _, sub := range []*cobra.Command{create, list, del, deliveries, redeliver} {
		sub.Flags().StringVar(&ws, "workspace", "", "workspace id")
		cmd.AddCommand(sub)
	}
	return cmd
}
