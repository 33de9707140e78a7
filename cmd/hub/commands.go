package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

// Environment variables that stand in for the global flags.
const (
	envAddr       = "HUB_CONNECTIONS_ADDR"
	envBrokerAddr = "HUB_BROKER_ADDR"
	envToken      = "HUB_TOKEN"
	envJobToken   = "HUB_JOB_TOKEN"
)

// flagEnv names the environment variable that stands in for a flag. The
// variable is read when the command runs, never as the flag's default, so
// that --help does not print a token.
var flagEnv = map[string]string{"addr": envAddr, "broker-addr": envBrokerAddr, "token": envToken, "job-token": envJobToken}

// secretFlags hold tokens: their values are never echoed.
var secretFlags = map[string]bool{"token": true, "job-token": true}

// usageError is bad usage: exit code 2.
type usageError struct{ error }

// badInputError is input no request can carry (invalid UTF-8): exit code 6,
// as the service's InvalidArgument would be.
type badInputError struct{ error }

// noTokenError is a call without a token: exit code 4.
type noTokenError struct{ error }

// globals are the flags every command shares.
type globals struct {
	addr, brokerAddr, token, output string
	timeout                         time.Duration
}

func newRoot(stdout io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "hub",
		Short:         "Command line of the connections layer (connection service and credential broker)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f := root.PersistentFlags()
	f.StringVar(&g.addr, "addr", "", "connection service address (host:port); default $"+envAddr)
	f.StringVar(&g.brokerAddr, "broker-addr", "", "credential broker's worker API address; default $"+envBrokerAddr)
	f.StringVar(&g.token, "token", "", "bearer token for the connection service (or the job scheduler's, for jobs mint-token); default $"+envToken)
	f.StringVarP(&g.output, "output", "o", "table", "output: table or json")
	f.DurationVar(&g.timeout, "timeout", 30*time.Second, "how long a call may take")
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if c.DisableFlagParsing {
			return nil // hub dev parses its own flags
		}
		if err := resolveFlags(c, args); err != nil {
			return err
		}
		if g.output != "table" && g.output != "json" {
			return usageError{fmt.Errorf("-o %q: want table or json", g.output)}
		}
		return nil
	}
	conns := connectionsCmd(g, stdout)
	connectionWrites(g, conns, stdout)
	connectionLifecycle(g, conns, stdout)
	audit, access := auditCmds(g, stdout)
	root.AddCommand(conns, recipesCmd(g, stdout), runtimeUsersCmd(g, stdout), audit, access, watchCmd(g, stdout),
		reconcileCmd(g, stdout), jobsCmd(g, stdout), credentialCmd(g, stdout), webhooksCmd(g, stdout), connectorsCmd(g, stdout), devCmd())
	return root
}

// resolveFlags fills the flags that were not set from their environment
// variables, then checks every flag and argument for invalid UTF-8, which no
// request can carry (gRPC would refuse to marshal it).
func resolveFlags(c *cobra.Command, args []string) error {
	var err error
	c.Flags().VisitAll(func(f *pflag.Flag) {
		from := "--" + f.Name
		if env, ok := flagEnv[f.Name]; ok && !f.Changed {
			v := os.Getenv(env)
			if v == "" {
				return
			}
			if e := f.Value.Set(v); e != nil && err == nil {
				err = usageError{fmt.Errorf("%s: %w", env, e)}
			}
			from = env
		}
		if v := f.Value.String(); err == nil && !utf8.ValidString(v) {
			if secretFlags[f.Name] {
				err = badInputError{fmt.Errorf("%s is not valid UTF-8", from)}
			} else {
				err = badInputError{fmt.Errorf("%s %s is not valid UTF-8", from, strconv.Quote(v))}
			}
		}
	})
	if err != nil {
		return err
	}
	for i, a := range args {
		if !utf8.ValidString(a) {
			return badInputError{fmt.Errorf("argument %d %s is not valid UTF-8", i+1, strconv.Quote(a))}
		}
	}
	return nil
}

// need checks that a call has an address and a token, and names the flag
// and environment variable of what is missing.
func need(addr, addrFlag, token, tokenFlag string) error {
	if addr == "" {
		return usageError{fmt.Errorf("no address: set --%s or %s", addrFlag, flagEnv[addrFlag])}
	}
	if token == "" {
		return noTokenError{fmt.Errorf("no token: set --%s or %s", tokenFlag, flagEnv[tokenFlag])}
	}
	return nil
}

// connections runs f against the connection service with the platform
// token (--addr, --token).
func (g *globals) connections(ctx context.Context, f func(context.Context, *grpc.ClientConn) error) error {
	return g.call(ctx, g.addr, "addr", g.token, "token", f)
}

// call runs f against a service with the bearer token and the timeout.
func (g *globals) call(ctx context.Context, addr, addrFlag, token, tokenFlag string, f func(context.Context, *grpc.ClientConn) error) error {
	if err := need(addr, addrFlag, token, tokenFlag); err != nil {
		return err
	}
	cc, err := grpc.NewClient(addr, grpcPlain())
	if err != nil {
		return usageError{err}
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	return f(withBearer(ctx, token), cc)
}

// grpcPlain is a plain-text connection (loopback, or a mesh that secures
// the hop).
func grpcPlain() grpc.DialOption { return grpc.WithTransportCredentials(insecure.NewCredentials()) }

func withBearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// print writes m as JSON, or as the table rows gives.
func (g *globals) print(w io.Writer, m proto.Message, header string, rows func(add func(...string))) error {
	if g.output == "json" {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(func(cols ...string) {
		for i := range cols {
			cols[i] = cell(cols[i])
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	})
	return tw.Flush()
}

// done reports a change whose answer has nothing to tabulate: one line for
// people, the answer as JSON for scripts. String arguments are escaped as
// table cells are.
func (g *globals) done(w io.Writer, m proto.Message, format string, a ...any) error {
	if g.output == "json" {
		return g.print(w, m, "", nil)
	}
	for i, x := range a {
		if s, ok := x.(string); ok {
			a[i] = cell(s)
		}
	}
	_, err := fmt.Fprintf(w, format+"\n", a...)
	return err
}

// cell keeps a value on its row and in its column: one with a tab, a line
// break, another control or unprintable character or invalid UTF-8 is
// printed quoted, with those escaped (strconv.Quote).
func cell(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return r != ' ' && !strconv.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func short(e fmt.Stringer, prefix string) string { return strings.TrimPrefix(e.String(), prefix) }

func connectionsCmd(g *globals, out io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "connections", Short: "List and read connections"}
	var ws, connector, project, name, owner, authType, runtimeUser string
	list := &cobra.Command{Use: "list", Short: "List a workspace's connections (every page), newest first", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if ws == "" {
				return usageError{errors.New("--workspace is required")}
			}
			req := &connectionsv1.ListConnectionsRequest{WorkspaceId: ws, Connector: connector, NameContains: name, Owner: owner, RuntimeUser: runtimeUser,
				PageSize: 100}
			if c.Flags().Changed("project") {
				req.ProjectId = &project
			}
			if authType != "" {
				at, err := enumFlag[credentialv1.AuthType](credentialv1.AuthType_value, "AUTH_TYPE_", authType, "auth-type")
				if err != nil {
					return err
				}
				req.AuthType = at
			}
			all := &connectionsv1.ListConnectionsResponse{}
			err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) error {
				cs := connectionsv1.NewConnectionServiceClient(cc)
				for tok := ""; ; {
					req.PageToken = tok
					page, err := cs.ListConnections(ctx, req)
					if err != nil {
						return err
					}
					all.Connections = append(all.Connections, page.GetConnections()...)
					if tok = page.GetNextPageToken(); tok == "" {
						return nil
					}
				}
			})
			if err != nil {
				return err
			}
			return g.print(out, all, "ID\tNAME\tCONNECTOR\tAUTH\tENVIRONMENT\tSTATUS\tETAG", func(add func(...string)) {
				for _, x := range all.GetConnections() {
					add(x.GetId(), x.GetName(), x.GetConnector(), short(x.GetAuthType(), "AUTH_TYPE_"),
						short(x.GetEnvironment(), "ENVIRONMENT_"), short(x.GetStatus(), "CONNECTION_STATUS_"), x.GetEtag())
				}
			})
		}}
	list.Flags().StringVar(&ws, "workspace", "", "workspace id (required)")
	list.Flags().StringVar(&connector, "connector", "", "only this connector's")
	list.Flags().StringVar(&project, "project", "", `only this project's ("" for the workspace root)`)
	list.Flags().StringVar(&name, "name", "", "only those whose name contains this, ignoring case")
	list.Flags().StringVar(&owner, "owner", "", "only those this principal created")
	list.Flags().StringVar(&runtimeUser, "runtime-user", "", "this runtime user's own connections (under any parent) instead")
	list.Flags().StringVar(&authType, "auth-type", "", "only this auth type (api_key, basic, oauth2_authorization_code, ...)")
	get := &cobra.Command{Use: "get ID", Short: "Read one connection", Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var resp *connectionsv1.GetConnectionResponse
			err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = connectionsv1.NewConnectionServiceClient(cc).GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: args[0]})
				return err
			})
			if err != nil {
				return err
			}
			x := resp.GetConnection()
			return g.print(out, x, "ID\tNAME\tCONNECTOR\tSTATUS\tREASON\tETAG\tLAST ERROR", func(add func(...string)) {
				add(x.GetId(), x.GetName(), x.GetConnector(), short(x.GetStatus(), "CONNECTION_STATUS_"),
					short(x.GetStatusReason(), "STATUS_REASON_"), x.GetEtag(), x.GetLastError())
			})
		}}
	cmd.AddCommand(list, get)
	return cmd
}

func reconcileCmd(g *globals, out io.Writer) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{Use: "reconcile", Short: "Report (--dry-run) or repair what the write protocol left behind", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var r *connectionsv1.ReconcileResponse
			err := g.connections(c.Context(), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				r, err = connectionsv1.NewConnectionServiceClient(cc).Reconcile(ctx, &connectionsv1.ReconcileRequest{DryRun: dryRun})
				return err
			})
			if err != nil {
				return err
			}
			return g.print(out, r, "WHAT\tCOUNT", func(add func(...string)) {
				add("orphaned secret generations", fmt.Sprint(len(r.GetOrphanedSecrets())))
				add("orphaned OAuth client secrets", fmt.Sprint(len(r.GetOrphanedOauthClients())))
				add("orphaned webhook signing secrets", fmt.Sprint(len(r.GetOrphanedWebhookSecrets())))
				add("connections missing their secret", fmt.Sprint(len(r.GetMissingSecretConnectionIds())))
				add("unfinished deletes", fmt.Sprint(len(r.GetUnfinishedDeleteConnectionIds())))
				add("pending connections", fmt.Sprint(len(r.GetPendingConnections())))
				add("expired write intents", fmt.Sprint(r.GetExpiredIntents()))
				add("writes in progress", fmt.Sprint(r.GetWritesInProgress()))
				add("repaired", fmt.Sprint(r.GetRepaired()))
			})
		}}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report only; change nothing")
	return cmd
}

func jobsCmd(g *globals, out io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "jobs", Short: "Job tokens"}
	var ws, recipe, job, runtimeUser string
	var ttl time.Duration
	mint := &cobra.Command{Use: "mint-token", Short: "Mint a job token (with the job scheduler's --token)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if ws == "" || recipe == "" || job == "" {
				return usageError{errors.New("--workspace, --recipe and --job are required")}
			}
			req := &brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: recipe, JobId: job, RuntimeUser: runtimeUser}
			if ttl > 0 {
				req.Ttl = durationpb.New(ttl)
			}
			var resp *brokerv1.MintJobTokenResponse
			err := g.call(c.Context(), g.brokerAddr, "broker-addr", g.token, "token", func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = brokerv1.NewCredentialBrokerClient(cc).MintJobToken(ctx, req)
				return err
			})
			if err != nil {
				return err
			}
			if g.output == "json" {
				return g.print(out, resp, "", nil)
			}
			// The token alone, so that TOKEN=$(hub jobs mint-token ...) works.
			_, err = fmt.Fprintln(out, resp.GetToken())
			return err
		}}
	mint.Flags().StringVar(&ws, "workspace", "", "workspace id (required)")
	mint.Flags().StringVar(&recipe, "recipe", "", "recipe id (required)")
	mint.Flags().StringVar(&job, "job", "", "job id (required)")
	mint.Flags().StringVar(&runtimeUser, "runtime-user", "", "runtime user the job runs for (callable recipes)")
	mint.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime (default the broker's)")
	cmd.AddCommand(mint)
	return cmd
}

func credentialCmd(g *globals, out io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "credential", Short: "What a recipe worker gets"}
	var jobToken string
	var showSecret bool
	get := &cobra.Command{Use: "get CONNECTION_ID", Short: "GetCredential with a job token (the secret is hidden unless --show-secret)",
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var resp *brokerv1.GetCredentialResponse
			err := g.call(c.Context(), g.brokerAddr, "broker-addr", jobToken, "job-token", func(ctx context.Context, cc *grpc.ClientConn) (err error) {
				resp, err = brokerv1.NewCredentialBrokerClient(cc).GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: args[0]})
				return err
			})
			if err != nil {
				return err
			}
			if !showSecret {
				hideSecret(resp.GetCredential())
			}
			cr := resp.GetCredential()
			expires := "never"
			if cr.GetExpireTime() != nil {
				expires = cr.GetExpireTime().AsTime().Format(time.RFC3339)
			}
			header := "CONNECTION\tCONNECTOR\tAUTH\tPLACEMENT\tEXPIRES\tRUNTIME USER"
			if showSecret {
				header += "\tSECRET"
			}
			return g.print(out, resp, header, func(add func(...string)) {
				p := short(resp.GetPlacement().GetKind(), "PLACEMENT_KIND_")
				if n := resp.GetPlacement().GetName(); n != "" {
					p += " " + n
				}
				row := []string{resp.GetConnectionId(), resp.GetConnector(), short(cr.GetAuthType(), "AUTH_TYPE_"), p, expires, resp.GetRuntimeUser()}
				if showSecret {
					row = append(row, secretText(cr))
				}
				add(row...)
			})
		}}
	get.Flags().StringVar(&jobToken, "job-token", "", "the job token (from jobs mint-token); default $"+envJobToken)
	get.Flags().BoolVar(&showSecret, "show-secret", false, "print the secret too (it lands in your terminal's scrollback)")
	cmd.AddCommand(get)
	return cmd
}

// secretText is the secret material of c, for the table of --show-secret.
func secretText(c *credentialv1.Credential) string {
	switch {
	case c.GetBasic() != nil:
		return "username=" + c.GetBasic().GetUsername() + " password=" + c.GetBasic().GetPassword()
	case c.GetApiKey() != nil:
		s := "key=" + c.GetApiKey().GetKey()
		if sec := c.GetApiKey().GetSecret(); sec != "" {
			s += " secret=" + sec
		}
		return s
	case c.GetOauth2() != nil:
		return "access_token=" + c.GetOauth2().GetAccessToken()
	}
	return ""
}

// hideSecret blanks the secret material of c.
func hideSecret(c *credentialv1.Credential) {
	const hidden = "(hidden; --show-secret prints it)"
	switch {
	case c.GetBasic() != nil:
		c.GetBasic().Password = hidden
	case c.GetApiKey() != nil:
		c.GetApiKey().Key, c.GetApiKey().Secret = hidden, ""
	case c.GetOauth2() != nil:
		c.GetOauth2().AccessToken = hidden
	}
}

func devCmd() *cobra.Command {
	return &cobra.Command{Use: "dev", Short: "Start the local stack, run the demo, and serve until interrupted",
		DisableFlagParsing: true,
		RunE:               func(c *cobra.Command, args []string) error { return runDev(c.Context(), args) }}
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(c, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// exitCode maps an error to the exit codes in the package doc.
func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	var re refusedError
	var bi badInputError
	if errors.As(err, &re) || errors.As(err, &bi) {
		return 6
	}
	var nt noTokenError
	if errors.As(err, &nt) {
		return 4
	}
	var ua unavailableError
	if errors.As(err, &ua) {
		return 5
	}
	if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") {
		return 2
	}
	switch status.Code(err) {
	case codes.NotFound:
		return 3
	case codes.PermissionDenied, codes.Unauthenticated:
		return 4
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return 5
	case codes.FailedPrecondition, codes.Aborted, codes.InvalidArgument, codes.AlreadyExists, codes.OutOfRange:
		return 6
	}
	return 1
}
