// Package devstack runs the whole local stack as real processes on loopback:
// a Vault dev server, the credential broker and the connection service on a
// SQLite file. The `hub dev` command and the end-to-end tests both use it.
package devstack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/integrationhub/connections/internal/childproc"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/loopback"
	"github.com/integrationhub/connections/internal/privilege"
	"github.com/integrationhub/connections/internal/vaultproc"
)

// Binaries are the built service programs.
type Binaries struct {
	Connections string
	Broker      string
}

// Build compiles both services from the workspace at root into dir.
func Build(ctx context.Context, root, dir string) (Binaries, error) {
	b := Binaries{Connections: filepath.Join(dir, "connections"), Broker: filepath.Join(dir, "broker")}
	for out, pkg := range map[string]string{
		b.Connections: "./services/connections/cmd/connections",
		b.Broker:      "./broker/cmd/broker",
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("devstack.Build %s: %w\n%s", pkg, err, msg)
		}
	}
	return b, nil
}

// Root finds the repository root (the folder with go.work) from the working
// directory upwards.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("devstack.Root: no go.work above the working directory")
		}
		dir = parent
	}
}

// Stack is a running local stack.
type Stack struct {
	Vault           *vaultproc.Server
	ConnectionsAddr string
	// ConnectionsHTTPAddr serves the OAuth callback.
	ConnectionsHTTPAddr string
	BrokerAddr          string
	BrokerAdminAddr     string
	// ProxyAddr is the broker's egress proxy; empty unless Options.Proxy.
	ProxyAddr string
	// Dir holds the SQLite file and one log file per process.
	Dir string
	// KVMount and PathPrefix locate the broker's secrets in Vault.
	KVMount, PathPrefix string
	// Issuer signs caller tokens; the connection service trusts its JWKS.
	Issuer *jwtauth.Signer

	bins  Binaries
	mu    sync.Mutex
	procs []*exec.Cmd // running, newest last
}

// Audience is the aud claim the local connection service expects.
const Audience = "integrationhub-connections"

// BrokerAudience is the aud claim the local brokers expect of the job
// scheduler's token (and put in job tokens).
const BrokerAudience = "integrationhub-broker"

// JobTokenKey is the transit key that signs the local stack's job tokens.
const JobTokenKey = "integrationhub-job-token"

// Token mints a caller token for workspace (or jwtauth.AllWorkspaces) with
// the given privileges, valid for an hour.
func (s *Stack) Token(subject, workspace string, privileges ...string) (string, error) {
	return s.Issuer.Mint(Audience, subject, workspace, privileges, time.Hour)
}

// Options are what differs between the stacks that Start runs.
type Options struct {
	// CatalogFile adds connectors to the connection service's catalog.
	CatalogFile string
	// Proxy turns on the broker's egress proxy (Stack.ProxyAddr).
	Proxy bool
}

// Start runs Vault, the broker and the connection service with their state
// and logs in dir, and waits until both services report SERVING.
func Start(ctx context.Context, bins Binaries, dir string, opts Options) (_ *Stack, err error) {
	s := &Stack{Dir: dir, KVMount: "secret", PathPrefix: "integrationhub", bins: bins}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	vlog, err := os.Create(filepath.Join(dir, "vault.log"))
	if err != nil {
		return nil, fmt.Errorf("devstack.Start: %w", err)
	}
	defer vlog.Close() // the child keeps its own descriptor
	if s.Vault, err = vaultproc.StartDev(ctx, vlog); err != nil {
		return nil, fmt.Errorf("devstack.Start: %w", err)
	}
	if err := s.enableTransit(ctx); err != nil {
		return nil, fmt.Errorf("devstack.Start: %w", err)
	}
	ports, err := loopback.FreeAddrs(5)
	if err != nil {
		return nil, fmt.Errorf("devstack.Start: %w", err)
	}
	s.BrokerAddr, s.BrokerAdminAddr, s.ConnectionsAddr, s.ConnectionsHTTPAddr = ports[0], ports[1], ports[2], ports[3]
	if opts.Proxy {
		s.ProxyAddr = ports[4]
	}

	if s.Issuer, err = jwtauth.NewSigner("https://devstack.invalid"); err != nil {
		return nil, fmt.Errorf("devstack.Start: %w", err)
	}
	jwks, err := s.Issuer.JWKS()
	if err == nil {
		err = os.WriteFile(s.jwksPath(), jwks, 0o600)
	}
	if err == nil {
		// The broker's service account: it follows changes, looks up
		// connections and runtime user connections, and reports status and
		// accesses, nothing else.
		var tok string
		if tok, err = s.Issuer.Mint(Audience, "credential-broker", jwtauth.AllWorkspaces,
			[]string{privilege.ViewConnections, privilege.ViewRuntimeUserConnections, privilege.ReportStatus}, 24*time.Hour); err == nil {
			err = os.WriteFile(s.brokerTokenPath(), []byte(tok), 0o600)
		}
	}
	if err == nil {
		// The connection service's service token for the broker's admin API.
		err = os.WriteFile(s.AdminTokenPath(), []byte(rand.Text()+rand.Text()), 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("devstack.Start: %w", err)
	}
	brokerArgs := s.brokerArgs(s.BrokerAddr, s.BrokerAdminAddr)
	if s.ProxyAddr != "" {
		brokerArgs = append(brokerArgs, "-proxy-listen="+s.ProxyAddr)
	}
	if _, err := s.run(bins.Broker, "broker.log", []string{"VAULT_TOKEN=" + s.Vault.Token}, brokerArgs...); err != nil {
		return nil, err
	}
	connArgs := s.connectionsArgs(s.ConnectionsAddr, s.ConnectionsHTTPAddr, "sqlite:"+s.DatabasePath())
	if opts.CatalogFile != "" {
		connArgs = append(connArgs, "-catalog-file="+opts.CatalogFile)
	}
	if _, err := s.run(bins.Connections, "connections.log", nil, connArgs...); err != nil {
		return nil, err
	}
	for _, addr := range []string{s.BrokerAddr, s.BrokerAdminAddr, s.ConnectionsAddr} {
		if err := waitServing(ctx, addr, 30*time.Second); err != nil {
			return nil, fmt.Errorf("devstack.Start: %s: %w (logs in %s)", addr, err, dir)
		}
	}
	return s, nil
}

func (s *Stack) jwksPath() string { return filepath.Join(s.Dir, "jwks.json") }

func (s *Stack) connectionsArgs(addr, httpAddr, database string) []string {
	return []string{"-listen=" + addr, "-http-listen=" + httpAddr, "-database=" + database,
		"-broker-admin-addr=" + s.BrokerAdminAddr, "-broker-admin-token-file=" + s.AdminTokenPath(),
		"-jwks=" + s.jwksPath(), "-jwt-issuer=" + s.Issuer.Issuer, "-jwt-audience=" + Audience,
		"-watch-poll=100ms", "-shutdown-grace=2s",
		// Tests start more connection services, each on a database of its
		// own, that share this stack's broker and so its Vault prefix: a
		// background reconciler would take the others' secrets for
		// orphans. Passes run through the Reconcile RPC instead.
		"-reconcile-period=0"}
}

// Proc is one more service process started beside the stack.
type Proc struct {
	Addr      string // gRPC (the broker's worker API)
	AdminAddr string // the broker's admin API
	HTTPAddr  string // the connection service's OAuth callback
	cmd       *exec.Cmd
}

// Kill ends the process at once (SIGKILL), as a crash would.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
}

// Terminate asks the process to stop (SIGTERM, as Kubernetes does) and
// waits until it has exited.
func (p *Proc) Terminate() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return p.cmd.Wait()
}

// Extra configures one more process.
type Extra struct {
	LogName string   // log file in the stack's folder
	Args    []string // flags after the stack's own; a repeated flag wins
	// Probe is a plaintext health address to wait on instead of the
	// process's own listeners (which may serve TLS).
	Probe string
	// Env is added to the process's environment (a later entry wins).
	Env []string
	// Binary, when set, runs instead of the stack's own connection service
	// (an older version, for a before/after benchmark) with only the flags
	// every version knows: versions from before the broker's admin
	// authentication present no token, so point them at a proxy that adds
	// it (e2e's adminTokenProxy).
	Binary string
}

// StartConnectionService starts one more connection-service process on
// database (e.g. a postgres:// URL shared by several replicas), using this
// stack's broker and issuer, and returns once it serves. It stops with the
// stack.
func (s *Stack) StartConnectionService(ctx context.Context, database string, x Extra) (*Proc, error) {
	return s.startRetrying(ctx, x, func() (*Proc, error) {
		addrs, err := loopback.FreeAddrs(2)
		if err != nil {
			return nil, err
		}
		p := &Proc{Addr: addrs[0], HTTPAddr: addrs[1]}
		bin, args := s.bins.Connections, s.connectionsArgs(p.Addr, p.HTTPAddr, database)
		if x.Binary != "" {
			// An older build: only the flags every version knows (it
			// presents no admin token; see Extra.Binary).
			bin, args = x.Binary, slices.DeleteFunc(args, func(a string) bool {
				return strings.HasPrefix(a, "-broker-admin-token-file=") || strings.HasPrefix(a, "-reconcile-period=")
			})
		}
		cmd, err := s.run(bin, x.LogName, x.Env, append(args, x.Args...)...)
		if err != nil {
			return nil, err
		}
		p.cmd = cmd
		return p, s.waitFor(ctx, x, p.Addr)
	})
}

// errPortTaken means another process took a free port between the moment
// it was picked and the moment the service bound it (a second copy of the
// suite on the machine, say).
var errPortTaken = errors.New("devstack: a port was taken before the service could bind it")

// startRetrying runs start again with new ports when a port it picked was
// taken meanwhile, unless the caller pinned the address (Probe).
//
// A process started this way stops when ctx ends (a test's t.Context()),
// not only with the stack: an idle service left running by every test
// would keep polling its database for the rest of the run.
func (s *Stack) startRetrying(ctx context.Context, x Extra, start func() (*Proc, error)) (*Proc, error) {
	for attempt := 1; ; attempt++ {
		p, err := start()
		if p != nil && p.cmd != nil {
			cmd := p.cmd
			context.AfterFunc(ctx, func() { s.stop(cmd) })
		}
		if !errors.Is(err, errPortTaken) || x.Probe != "" || attempt == 3 {
			return p, err
		}
		p.Kill()
	}
}

// stop stops one process of the stack, unless Stop has already.
func (s *Stack) stop(cmd *exec.Cmd) {
	s.mu.Lock()
	i := slices.Index(s.procs, cmd)
	if i >= 0 {
		s.procs = slices.Delete(s.procs, i, i+1)
	}
	s.mu.Unlock()
	if i >= 0 {
		stopProcess(cmd)
	}
}

func (s *Stack) waitFor(ctx context.Context, x Extra, addrs ...string) error {
	if x.Probe != "" {
		addrs = []string{x.Probe}
	}
	logPath := filepath.Join(s.Dir, x.LogName)
	taken := func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "address already in use")
	}
	for _, a := range addrs {
		if err := waitServing(ctx, a, 30*time.Second, taken); err != nil {
			return fmt.Errorf("devstack: %s: %w (log %s)", a, err, logPath)
		}
	}
	return nil
}

// StartBroker starts one more broker on the stack's Vault and returns once
// both its APIs serve. It stops with the stack.
func (s *Stack) StartBroker(ctx context.Context, x Extra) (*Proc, error) {
	return s.startRetrying(ctx, x, func() (*Proc, error) {
		addrs, err := loopback.FreeAddrs(2)
		if err != nil {
			return nil, err
		}
		p := &Proc{Addr: addrs[0], AdminAddr: addrs[1]}
		cmd, err := s.run(s.bins.Broker, x.LogName, append([]string{"VAULT_TOKEN=" + s.Vault.Token}, x.Env...), append(s.brokerArgs(p.Addr, p.AdminAddr), x.Args...)...)
		if err != nil {
			return nil, err
		}
		p.cmd = cmd
		return p, s.waitFor(ctx, x, p.Addr, p.AdminAddr)
	})
}

func (s *Stack) brokerArgs(addr, adminAddr string) []string {
	return []string{"-listen=" + addr, "-admin-listen=" + adminAddr, "-vault-addr=" + s.Vault.Addr,
		"-vault-kv-mount=" + s.KVMount, "-vault-path-prefix=" + s.PathPrefix, "-shutdown-grace=2s",
		"-connections-addr=" + s.ConnectionsAddr, "-connections-token-file=" + s.brokerTokenPath(),
		"-jwks=" + s.jwksPath(), "-jwt-issuer=" + s.Issuer.Issuer, "-jwt-audience=" + BrokerAudience,
		"-vault-transit-mount=transit", "-vault-job-token-key=" + JobTokenKey, "-admin-token-file=" + s.AdminTokenPath()}
}

// enableTransit mounts Vault's transit engine and makes the job-token key,
// as the Vault operator does for a real deployment.
func (s *Stack) enableTransit(ctx context.Context) error {
	return EnableTransit(ctx, s.Vault.Addr, s.Vault.Token)
}

// EnableTransit mounts transit on the Vault at addr and makes the job-token
// key there (for tests whose broker has a Vault of its own).
func EnableTransit(ctx context.Context, addr, token string) error {
	for _, c := range []struct{ path, body string }{
		{"/v1/sys/mounts/transit", `{"type":"transit"}`},
		{"/v1/transit/keys/" + JobTokenKey, `{"type":"ed25519"}`},
	} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr+c.path, strings.NewReader(c.body))
		if err != nil {
			return err
		}
		req.Header.Set("X-Vault-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("transit: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("transit: %s: %s", c.path, resp.Status)
		}
	}
	return nil
}

// AdminTokenPath is the file holding the service token the connection
// service presents to the broker's admin API.
func (s *Stack) AdminTokenPath() string { return filepath.Join(s.Dir, "admin-token") }

func (s *Stack) brokerTokenPath() string { return filepath.Join(s.Dir, "broker-token") }

// DatabasePath is the connection service's SQLite file.
func (s *Stack) DatabasePath() string { return filepath.Join(s.Dir, "connections.db") }

// LogFiles lists the services' log files (not Vault's).
func (s *Stack) LogFiles() []string {
	files, _ := filepath.Glob(filepath.Join(s.Dir, "*.log"))
	return slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "vault.log" })
}

// Stop interrupts every process, newest first, and waits for them.
func (s *Stack) Stop() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		stopProcess(procs[i])
	}
	if s.Vault != nil {
		_ = s.Vault.Stop()
		s.Vault = nil
	}
}

func (s *Stack) run(bin, logName string, env []string, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(filepath.Join(s.Dir, logName))
	if err != nil {
		return nil, fmt.Errorf("devstack.Start: %w", err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	childproc.Tie(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("devstack.Start %s: %w", filepath.Base(bin), err)
	}
	s.mu.Lock()
	s.procs = append(s.procs, cmd)
	s.mu.Unlock()
	return cmd, nil
}

func stopProcess(cmd *exec.Cmd) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// waitServing polls the gRPC health service at addr until it says SERVING.
//
// taken, when set, reports that the service could not bind its port: the
// address may then answer for another process, so waiting is pointless.
func waitServing(ctx context.Context, addr string, limit time.Duration, taken ...func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		for _, t := range taken {
			if t() {
				return errPortTaken
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not serving in time: last error %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
