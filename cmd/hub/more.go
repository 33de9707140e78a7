package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

// Secrets are read from standard input (its first line), never from a
// flag: flags land in shell history and in every process listing.
func readSecret(in io.Reader) (string, error) {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	s := strings.TrimRight(line, "\r\n")
	if s == "" {
		return "", usageError{errors.New("--secret-stdin: standard input held no secret")}
	}
	if !utf8.ValidString(s) {
		return "", badInputError{errors.New("--secret-stdin: the secret on standard input is not valid UTF-8")}
	}
	return s, nil
}

// secretFor builds the secret of auth type at from standard input.
func secretFor(at credentialv1.AuthType, username string, in io.Reader) (*credentialv1.Secret, error) {
	s, err := readSecret(in)
	if err != nil {
		return nil, err
	}
	if at == credentialv1.AuthType_AUTH_TYPE_BASIC {
		if username == "" {
			return nil, usageError{errors.New("--username is required for basic auth")}
		}
		return &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: username, Password: s}}}, nil
	}
	return &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: s}}}, nil
}

func enumFlag[E ~int32](values map[string]int32, prefix, name, flag string) (E, error) {
	if name == "" {
		return 0, nil
	}
	v, ok := values[prefix+strings.ToUpper(name)]
	if !ok || v == 0 {
		return 0, usageError{fmt.Errorf("--%s %q is not one of %s", flag, name, knownValues(values, prefix))}
	}
	return E(v), nil
}

// knownValues lists an enum's names as its flag takes them, in the enum's
// order, without the unspecified zero value.
func knownValues(values map[string]int32, prefix string) string {
	var names []string
	for n, v := range values {
		if v != 0 {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b string) int { return int(values[a] - values[b]) })
	for i, n := range names {
		names[i] = strings.ToLower(strings.TrimPrefix(n, prefix))
	}
	return strings.Join(names, ", ")
}

// connectionWrites adds create, update, test and delete to cmd.
func connectionWrites(g *globals, cmd *cobra.Command, out io.Writer) {
	show := func(x *connectionsv1.Connection) error {
		return g.print(out, x, "ID\tNAME\tCONNECTOR\tSTATUS\tETAG", func(add func(...string)) {
			add(x.GetId(), x.GetName(), x.GetConnector(), short(x.GetStatus(), "CONNECTION_STATUS_"), x.GetEtag())
		})
	}
	var ws, name, connector, env, authType, baseURL, subdomain, project, username, bind string
	var fromStdin bool
	create := &cobra.Command{Use: "create", Short: "Create a connection (the secret from standard input with --secret-stdin)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			e, err := enumFlag[connectionsv1.Environment](connectionsv1.Environment_value, "ENVIRONMENT_", env, "environment")
			if err != nil {
				return err
			}
			at, err := enumFlag[credentialv1.AuthType](credentialv1.AuthType_value, "AUTH_TYPE_", authType, "auth-type")
			if err != nil {
				return err
			}
			req := &connectionsv1.CreateConnectionRequest{WorkspaceId: ws, ProjectId: project, Name: name, Connector: connector,
				Environment: e, AuthType: at}
			if baseURL != "" || subdomain != "" {
				req.Instance = &credentialv1.AppInstance{BaseUrl: baseURL, Subdomain: subdomain}
			}
			if bind != "" {
				recipe, step, ok := strings.Cut(bind, "/")
				if !ok || recipe == "" || step == "" {
					return usageError{fmt.Errorf("--bind %q: write RECIPE/STEP", bind)}
				}
				req.Bind = &connectionsv1.RecipeStep{RecipeId: recipe, Step: step}
			}
			if fromStdin {
				if req.Secret, err = secretFor(at, username, c.InOrStdin()); err != nil {
					return err
				}
			}
			var resp *connectionsv1.CreateConnectionResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).CreateConnection(ctx, req)
				return err
			}); err != nil {
				return err
			}
			return show(resp.GetConnection())
		}}
	f := create.Flags()
	f.StringVar(&ws, "workspace", "", "workspace id")
	f.StringVar(&project, "project", "", "project id")
	f.StringVar(&name, "name", "", "connection name")
	f.StringVar(&connector, "connector", "", "connector (app) name")
	f.StringVar(&env, "environment", "production", "production or sandbox")
	f.StringVar(&authType, "auth-type", "", "api_key, basic, custom_header, oauth2_authorization_code, oauth2_client_credentials, oauth1")
	f.StringVar(&baseURL, "base-url", "", "the app instance's base URL")
	f.StringVar(&subdomain, "subdomain", "", "the app instance's subdomain")
	f.StringVar(&username, "username", "", "username (basic auth)")
	f.BoolVar(&fromStdin, "secret-stdin", false, "read the API key or password from standard input")
	f.StringVar(&bind, "bind", "", "also bind the new connection to RECIPE/STEP, in the same transaction")

	var etag, newName, newUsername string
	var newSecret, force bool
	update := &cobra.Command{Use: "update ID", Short: "Rename a connection or replace its secret (--secret-stdin); --etag from get", Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			req := &connectionsv1.UpdateConnectionRequest{Id: args[0], Etag: etag}
			if newName != "" {
				req.Name = proto.String(newName)
			}
			err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) error {
				cs := connectionsv1.NewConnectionServiceClient(cc)
				if newSecret {
					cur, err := cs.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: args[0]})
					if err != nil {
						return err
					}
					if req.Secret, err = secretFor(cur.GetConnection().GetAuthType(), newUsername, c.InOrStdin()); err != nil {
						return err
					}
				}
				resp, err := cs.UpdateConnection(ctx, req)
				if err != nil {
					return err
				}
				return show(resp.GetConnection())
			})
			return err
		}}
	update.Flags().StringVar(&etag, "etag", "", "the etag the change is based on (refused with exit 6 if the connection changed since)")
	update.Flags().StringVar(&newName, "name", "", "new name")
	update.Flags().StringVar(&newUsername, "username", "", "username, with a new basic-auth password")
	update.Flags().BoolVar(&newSecret, "secret-stdin", false, "replace the secret with one read from standard input")

	test := &cobra.Command{Use: "test ID", Short: "Check the stored credential against the app (exit 6 when the app refuses it)", Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var resp *connectionsv1.TestConnectionResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).TestConnection(ctx, &connectionsv1.TestConnectionRequest{ConnectionId: args[0]})
				return err
			}); err != nil {
				return err
			}
			x := resp.GetConnection()
			if err := g.print(out, resp, "ID\tOK\tSTATUS\tREASON\tLAST ERROR", func(add func(...string)) {
				add(x.GetId(), fmt.Sprint(resp.GetOk()), short(x.GetStatus(), "CONNECTION_STATUS_"), short(x.GetStatusReason(), "STATUS_REASON_"), x.GetLastError())
			}); err != nil {
				return err
			}
			switch {
			case resp.GetOk():
				return nil
			case x.GetStatus() == connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE:
				return errAppUnreachable
			}
			return errRefusedByApp
		}}

	del := &cobra.Command{Use: "delete ID", Short: "Delete a connection (--force also when recipes use it)", Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var resp *connectionsv1.DeleteConnectionResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).DeleteConnection(ctx, &connectionsv1.DeleteConnectionRequest{Id: args[0], Etag: etag, Force: force})
				return err
			}); err != nil {
				return err
			}
			return g.done(out, resp, "deleted connection %s", args[0])
		}}
	del.Flags().StringVar(&etag, "etag", "", "the etag the delete is based on")
	del.Flags().BoolVar(&force, "force", false, "delete even when recipe steps use it (they lose their binding)")
	cmd.AddCommand(create, update, test, del)
}

// errRefusedByApp is a completed check whose answer is no: exit 6.
var errRefusedByApp = refusedError{errors.New("the app refused the stored credential; the connection is invalid until it is fixed")}

// errAppUnreachable is a check the app did not answer: exit 5.
var errAppUnreachable = unavailableError{errors.New("the app could not be reached; the connection stays active, try again later")}

type unavailableError struct{ error }

type refusedError struct{ error }

func recipesCmd(g *globals, out io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "recipes", Short: "Recipes and their connection bindings"}
	var id, ws, name, env, recipe, step, conn string
	var callable, runtimeUsers, fallback bool
	register := &cobra.Command{Use: "register", Short: "Create or replace what the connection service knows of a recipe", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			e, err := enumFlag[connectionsv1.Environment](connectionsv1.Environment_value, "ENVIRONMENT_", env, "environment")
			if err != nil {
				return err
			}
			var resp *connectionsv1.RegisterRecipeResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).RegisterRecipe(ctx, &connectionsv1.RegisterRecipeRequest{RecipeId: id,
					WorkspaceId: ws, Name: name, Environment: e, Callable: callable, RuntimeUserConnections: runtimeUsers, RuntimeUserFallback: fallback})
				return err
			}); err != nil {
				return err
			}
			return g.done(out, resp, "registered recipe %s in workspace %s", id, ws)
		}}
	register.Flags().StringVar(&id, "id", "", "recipe id")
	register.Flags().StringVar(&ws, "workspace", "", "workspace id")
	register.Flags().StringVar(&name, "name", "", "recipe name")
	register.Flags().StringVar(&env, "environment", "production", "production or sandbox")
	register.Flags().BoolVar(&callable, "callable", false, "the recipe can be called by other recipes")
	register.Flags().BoolVar(&runtimeUsers, "runtime-user-connections", false, "runs for runtime users with their own connections")
	register.Flags().BoolVar(&fallback, "runtime-user-fallback", false, "a runtime user without a connection gets the recipe's own")
	bind := &cobra.Command{Use: "bind", Short: "Make a recipe step use a connection", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var resp *connectionsv1.BindConnectionResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).BindConnection(ctx, &connectionsv1.BindConnectionRequest{RecipeId: recipe, Step: step, ConnectionId: conn})
				return err
			}); err != nil {
				return err
			}
			return g.done(out, resp, "bound recipe %s step %s to connection %s", recipe, step, conn)
		}}
	unbind := &cobra.Command{Use: "unbind", Short: "Remove a recipe step's binding", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var resp *connectionsv1.UnbindConnectionResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).UnbindConnection(ctx, &connectionsv1.UnbindConnectionRequest{RecipeId: recipe, Step: step})
				return err
			}); err != nil {
				return err
			}
			return g.done(out, resp, "unbound recipe %s step %s", recipe, step)
		}}
	for _, x := range []*cobra.Command{bind, unbind} {
		x.Flags().StringVar(&recipe, "recipe", "", "recipe id")
		x.Flags().StringVar(&step, "step", "", "recipe step")
	}
	bind.Flags().StringVar(&conn, "connection", "", "connection id")
	usage := &cobra.Command{Use: "usage CONNECTION_ID", Short: "The recipe steps that use a connection", Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var resp *connectionsv1.ListConnectionUsageResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).ListConnectionUsage(ctx, &connectionsv1.ListConnectionUsageRequest{ConnectionId: args[0]})
				return err
			}); err != nil {
				return err
			}
			return g.print(out, resp, "RECIPE\tSTEP\tCONNECTION", func(add func(...string)) {
				for _, b := range resp.GetBindings() {
					add(b.GetRecipeId(), b.GetStep(), b.GetConnectionId())
				}
			})
		}}
	cmd.AddCommand(register, bind, unbind, usage)
	return cmd
}

func runtimeUsersCmd(g *globals, out io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "runtime-users", Short: "Runtime users' own connections under a parent connection"}
	var parent, user, username string
	list := &cobra.Command{Use: "list", Short: "List a parent connection's runtime user connections", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			all := &connectionsv1.ListRuntimeUserConnectionsResponse{}
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) error {
				cs := connectionsv1.NewConnectionServiceClient(cc)
				for tok := ""; ; {
					page, err := cs.ListRuntimeUserConnections(ctx, &connectionsv1.ListRuntimeUserConnectionsRequest{ParentConnectionId: parent,
						RuntimeUser: user, PageSize: 100, PageToken: tok})
					if err != nil {
						return err
					}
					all.Connections = append(all.Connections, page.GetConnections()...)
					if tok = page.GetNextPageToken(); tok == "" {
						return nil
					}
				}
			}); err != nil {
				return err
			}
			return g.print(out, all, "ID\tRUNTIME USER\tSTATUS", func(add func(...string)) {
				for _, x := range all.GetConnections() {
					add(x.GetId(), x.GetRuntimeUser(), short(x.GetStatus(), "CONNECTION_STATUS_"))
				}
			})
		}}
	create := &cobra.Command{Use: "create", Short: "Store a runtime user's own connection (the secret from standard input)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) error {
				cs := connectionsv1.NewConnectionServiceClient(cc)
				p, err := cs.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: parent})
				if err != nil {
					return err
				}
				sec, err := secretFor(p.GetConnection().GetAuthType(), username, c.InOrStdin())
				if err != nil {
					return err
				}
				resp, err := cs.CreateRuntimeUserConnection(ctx, &connectionsv1.CreateRuntimeUserConnectionRequest{ParentConnectionId: parent,
					RuntimeUser: user, Secret: sec})
				if err != nil {
					return err
				}
				x := resp.GetConnection()
				return g.print(out, x, "ID\tRUNTIME USER\tSTATUS", func(add func(...string)) {
					add(x.GetId(), x.GetRuntimeUser(), short(x.GetStatus(), "CONNECTION_STATUS_"))
				})
			})
		}}
	for _, x := range []*cobra.Command{list, create} {
		x.Flags().StringVar(&parent, "parent", "", "parent connection id")
		x.Flags().StringVar(&user, "user", "", "runtime user")
	}
	create.Flags().StringVar(&username, "username", "", "username (basic auth)")
	del := &cobra.Command{Use: "delete ID", Short: "Delete a runtime user connection", Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var resp *connectionsv1.DeleteRuntimeUserConnectionResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).DeleteRuntimeUserConnection(ctx, &connectionsv1.DeleteRuntimeUserConnectionRequest{Id: args[0]})
				return err
			}); err != nil {
				return err
			}
			return g.done(out, resp, "deleted runtime user connection %s", args[0])
		}}
	cmd.AddCommand(list, create, del)
	return cmd
}

func auditCmds(g *globals, out io.Writer) (*cobra.Command, *cobra.Command) {
	var ws, conn, job string
	var limit int32
	audit := &cobra.Command{Use: "audit", Short: "The audit log"}
	auditList := &cobra.Command{Use: "list", Short: "A workspace's audit events, oldest first", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var resp *connectionsv1.ListAuditEventsResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).ListAuditEvents(ctx, &connectionsv1.ListAuditEventsRequest{WorkspaceId: ws,
					ConnectionId: conn, PageSize: limit})
				return err
			}); err != nil {
				return err
			}
			return g.print(out, resp, "TIME\tACTOR\tACTION\tCONNECTION", func(add func(...string)) {
				for _, e := range resp.GetEvents() {
					add(e.GetTime().AsTime().Format(time.RFC3339), e.GetActor(), e.GetAction(), e.GetConnectionId())
				}
			})
		}}
	access := &cobra.Command{Use: "access", Short: "The access record (who got which credential)"}
	accessList := &cobra.Command{Use: "list", Short: "A workspace's access events", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var resp *connectionsv1.ListAccessEventsResponse
			if err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).ListAccessEvents(ctx, &connectionsv1.ListAccessEventsRequest{WorkspaceId: ws,
					ConnectionId: conn, JobId: job, PageSize: limit})
				return err
			}); err != nil {
				return err
			}
			return g.print(out, resp, "LAST\tOPERATION\tCODE\tJOB\tCONNECTION\tCOUNT", func(add func(...string)) {
				for _, e := range resp.GetEvents() {
					add(e.GetLastTime().AsTime().Format(time.RFC3339), e.GetOperation(), e.GetCode(), e.GetJobId(), e.GetResolvedConnectionId(), fmt.Sprint(e.GetCount()))
				}
			})
		}}
	for _, x := range []*cobra.Command{auditList, accessList} {
		x.Flags().StringVar(&ws, "workspace", "", "workspace id")
		x.Flags().StringVar(&conn, "connection", "", "only this connection's")
		x.Flags().Int32Var(&limit, "limit", 100, "how many events at most")
	}
	accessList.Flags().StringVar(&job, "job", "", "only this job's")
	audit.AddCommand(auditList)
	access.AddCommand(accessList)
	return audit, access
}

func watchCmd(g *globals, out io.Writer) *cobra.Command {
	var ws string
	cmd := &cobra.Command{Use: "watch", Short: "Follow connection changes until interrupted (one JSON object per line with -o json)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := need(g.addr, "addr", g.token, "token"); err != nil {
				return err
			}
			cc, err := grpc.NewClient(g.addr, grpcPlain())
			if err != nil {
				return usageError{err}
			}
			defer cc.Close()
			ctx := withBearer(c.Context(), g.token)
			stream, err := connectionsv1.NewConnectionServiceClient(cc).WatchConnections(ctx, &connectionsv1.WatchConnectionsRequest{WorkspaceId: ws})
			if err != nil {
				return err
			}
			for {
				ev, err := stream.Recv()
				if c.Context().Err() != nil {
					return nil
				}
				if err != nil {
					return err
				}
				if g.output == "json" {
					b, _ := protojson.Marshal(ev)
					fmt.Fprintln(out, string(b))
					continue
				}
				what := ev.GetConnection().GetId()
				if oc := ev.GetOauthClient(); oc != nil {
					what = "oauth client " + oc.GetConnector() + " " + oc.GetWorkspaceId()
				}
				fmt.Fprintf(out, "%s\t%s\t%s\t%s\n", ev.GetTime().AsTime().Format(time.RFC3339), short(ev.GetType(), "CHANGE_TYPE_"), cell(what), cell(ev.GetActor()))
			}
		}}
	cmd.Flags().StringVar(&ws, "workspace", "", "workspace id (empty: every workspace, with a token for all)")
	return cmd
}
