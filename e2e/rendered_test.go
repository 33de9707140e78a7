package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/childproc"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/loopback"
	"github.com/integrationhub/connections/internal/oauthtest"
	"github.com/integrationhub/connections/internal/pgtest"
	"github.com/integrationhub/connections/internal/privilege"
)

// The parts of a rendered pod template the runner reads.
type (
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	container struct {
		Name         string   `yaml:"name"`
		Args         []string `yaml:"args"`
		Env          []envVar `yaml:"env"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
		ReadinessProbe *struct {
			GRPC *struct {
				Port    int    `yaml:"port"`
				Service string `yaml:"service"`
			} `yaml:"grpc"`
		} `yaml:"readinessProbe"`
	}
	keyPath struct {
		Key  string `yaml:"key"`
		Path string `yaml:"path"`
	}
	volume struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string    `yaml:"secretName"`
			Items      []keyPath `yaml:"items"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name  string    `yaml:"name"`
			Items []keyPath `yaml:"items"`
		} `yaml:"configMap"`
	}
	workload struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			Template struct {
				Metadata struct {
					Labels map[string]string `yaml:"labels"`
				} `yaml:"metadata"`
				Spec struct {
					InitContainers []container `yaml:"initContainers"`
					Containers     []container `yaml:"containers"`
					Volumes        []volume    `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
)

func (w *workload) containers() []container {
	return append(append([]container{}, w.Spec.Template.Spec.InitContainers...), w.Spec.Template.Spec.Containers...)
}

func (w *workload) component() string {
	return w.Spec.Template.Metadata.Labels["app.kubernetes.io/component"]
}

// cluster runs rendered workloads as local processes, the way the kubelet would run their
// containers: same args and environment, with Services and ports mapped to loopback addresses,
// Secrets and ConfigMaps written to the directories their volumes mount.
type cluster struct {
	t       *testing.T
	objs    []object
	dir     string
	secrets map[string]map[string]string            // the namespace's Secrets: name -> key -> value
	podSecs map[string]map[string]map[string]string // per workload: Secrets of the same name in its own namespace
	addrs   map[string]string                       // "<component>/<containerPort>" -> loopback address
	// services maps a Service's host names to the component it selects.
	services map[string]string
	logs     []string
}

func newCluster(t *testing.T, objs []object) *cluster {
	dir, err := os.MkdirTemp("", "rc") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &cluster{t: t, objs: objs, dir: dir, secrets: map[string]map[string]string{},
		podSecs: map[string]map[string]map[string]string{}, addrs: map[string]string{}, services: map[string]string{}}
	for _, o := range objs {
		switch o.Kind {
		case "Secret": // Secrets the chart renders (the OAuth state key, a DSN given as a value)
			data := map[string]string{}
			for k, v := range o.Data {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Fatalf("Secret %s: %v", o.Metadata.Name, err)
				}
				data[k] = string(b)
			}
			for k, v := range o.StringData {
				data[k] = v
			}
			c.secrets[o.Metadata.Name] = data
		case "Service":
			sel, _ := o.Raw["spec"].(map[string]any)["selector"].(map[string]any)
			comp, _ := sel["app.kubernetes.io/component"].(string)
			for _, h := range []string{o.Metadata.Name, o.Metadata.Name + ".integrationhub.svc", o.Metadata.Name + ".integrationhub.svc.cluster.local"} {
				c.services[h] = comp
			}
		}
	}
	return c
}

// workload returns the rendered Deployment or Job named name, or nil.
func (c *cluster) workload(kind, name string) *workload {
	for _, o := range c.objs {
		if o.Kind == kind && o.Metadata.Name == name {
			b, _ := yaml.Marshal(o.Raw)
			var w workload
			if err := yaml.Unmarshal(b, &w); err != nil {
				c.t.Fatal(err)
			}
			return &w
		}
	}
	return nil
}

var listenRE = regexp.MustCompile(`^:(\d+)$`)

// allocate gives every listener of the workload's own containers (":<port>" values) a loopback
// address, unless one is preset.
func (c *cluster) allocate(w *workload) {
	for _, ct := range w.containers() {
		for _, e := range ct.Env {
			if m := listenRE.FindStringSubmatch(e.Value); m != nil {
				key := w.component() + "/" + m[1]
				if _, ok := c.addrs[key]; !ok {
					a, err := loopback.FreeAddrs(1)
					if err != nil {
						c.t.Fatal(err)
					}
					c.addrs[key] = a[0]
				}
			}
		}
	}
}

// mounts writes each volume of w to a directory and returns mount path -> directory for ct.
func (c *cluster) mounts(w *workload, ct container) map[string]string {
	out := map[string]string{}
	for _, m := range ct.VolumeMounts {
		var vol *volume
		for i := range w.Spec.Template.Spec.Volumes {
			if w.Spec.Template.Spec.Volumes[i].Name == m.Name {
				vol = &w.Spec.Template.Spec.Volumes[i]
			}
		}
		if vol == nil {
			c.t.Fatalf("%s: mount of an undeclared volume %s", w.Metadata.Name, m.Name)
		}
		dir := filepath.Join(c.dir, w.Metadata.Name, m.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			c.t.Fatal(err)
		}
		var data map[string]string
		var items []keyPath
		switch {
		case vol.Secret != nil:
			data, items = c.secret(w, vol.Secret.SecretName), vol.Secret.Items
		case vol.ConfigMap != nil:
			data, items = findObject(c.t, c.objs, "ConfigMap", vol.ConfigMap.Name).Data, vol.ConfigMap.Items
		}
		if data != nil && items == nil {
			for k := range data {
				items = append(items, keyPath{k, k})
			}
		}
		for _, it := range items {
			v, ok := data[it.Key]
			if !ok {
				c.t.Fatalf("%s: volume %s: no key %s", w.Metadata.Name, m.Name, it.Key)
			}
			if err := os.WriteFile(filepath.Join(dir, it.Path), []byte(v), 0o600); err != nil {
				c.t.Fatal(err)
			}
		}
		out[m.MountPath] = dir
	}
	return out
}

func (c *cluster) secret(w *workload, name string) map[string]string {
	if s, ok := c.podSecs[w.Metadata.Name][name]; ok {
		return s
	}
	s, ok := c.secrets[name]
	if !ok {
		c.t.Fatalf("%s: Secret %s does not exist (the operator creates it; the test did not)", w.Metadata.Name, name)
	}
	return s
}

// env maps the container's environment onto this machine.
func (c *cluster) env(w *workload, ct container, mounts map[string]string) []string {
	paths := make([]string, 0, len(mounts))
	for p := range mounts {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	mapPath := func(v string) string {
		for _, p := range paths {
			if rest, ok := strings.CutPrefix(v, p+"/"); ok {
				return filepath.Join(mounts[p], rest)
			}
		}
		return v
	}
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir}
	for _, e := range ct.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef == nil {
			continue // the downward API (GOMEMLIMIT from the memory limit): no limit here
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			s := c.secret(w, e.ValueFrom.SecretKeyRef.Name)
			var ok bool
			if v, ok = s[e.ValueFrom.SecretKeyRef.Key]; !ok {
				c.t.Fatalf("%s: %s: Secret %s has no key %s", w.Metadata.Name, e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			}
		}
		switch {
		case listenRE.MatchString(v):
			v = c.addrs[w.component()+"/"+strings.TrimPrefix(v, ":")]
		case strings.HasPrefix(v, "unix://"):
			v = "unix://" + mapPath(strings.TrimPrefix(v, "unix://"))
		case strings.HasPrefix(v, "unix:"):
			v = "unix:" + mapPath(strings.TrimPrefix(v, "unix:"))
		case strings.HasPrefix(v, "/"):
			v = mapPath(v)
		default:
			if host, port, ok := strings.Cut(v, ":"); ok {
				if comp, known := c.services[host]; known {
					a, ok := c.addrs[comp+"/"+port]
					if !ok {
						c.t.Fatalf("%s: %s=%s: nothing listens on %s port %s", w.Metadata.Name, e.Name, v, comp, port)
					}
					v = a
				}
			}
		}
		out = append(out, e.Name+"="+v)
	}
	return out
}

// run starts container name of w with its rendered args and environment and returns its
// environment as the process sees it.
func (c *cluster) run(w *workload, name string) map[string]string {
	var ct container
	for _, x := range w.containers() {
		if x.Name == name {
			ct = x
		}
	}
	bin := map[string]string{"connections": binaries.Connections, "migrate": binaries.Connections, "broker": binaries.Broker}[ct.Name]
	if bin == "" {
		c.t.Fatalf("%s: no container %s of ours", w.Metadata.Name, name)
	}
	env := c.env(w, ct, c.mounts(w, ct))
	logName := filepath.Join(c.dir, w.Metadata.Name+"-"+ct.Name+".log")
	f, err := os.Create(logName)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, ct.Args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	childproc.Tie(cmd)
	if w.Kind == "Job" {
		if err := cmd.Run(); err != nil {
			b, _ := os.ReadFile(logName)
			c.t.Fatalf("Job %s: %v\n%s", w.Metadata.Name, err, b)
		}
	} else {
		if err := cmd.Start(); err != nil {
			c.t.Fatal(err)
		}
		c.logs = append(c.logs, logName)
		c.t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// ready waits until the container's readiness probe (gRPC health, plain text) passes.
func (c *cluster) ready(w *workload, name string) {
	c.t.Helper()
	for _, ct := range w.containers() {
		if ct.Name != name {
			continue
		}
		if ct.ReadinessProbe == nil || ct.ReadinessProbe.GRPC == nil {
			c.t.Fatalf("%s/%s: no gRPC readiness probe", w.Metadata.Name, name)
		}
		addr := c.addrs[w.component()+"/"+strconv.Itoa(ct.ReadinessProbe.GRPC.Port)]
		if addr == "" {
			c.t.Fatalf("%s/%s: the probe's port %d has no listener", w.Metadata.Name, name, ct.ReadinessProbe.GRPC.Port)
		}
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.t.Fatal(err)
		}
		defer cc.Close()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(c.t.Context(), 2*time.Second)
			resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: ct.ReadinessProbe.GRPC.Service})
			cancel()
			if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				return
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("%s/%s not ready: %v\n%s", w.Metadata.Name, name, err, c.tail())
			}
			time.Sleep(100 * time.Millisecond) // polling pace, bounded by the deadline
		}
	}
}

func (c *cluster) tail() string {
	var b strings.Builder
	for _, l := range c.logs {
		data, _ := os.ReadFile(l)
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(l), data)
	}
	return b.String()
}

// approleFor writes policy hcl and an AppRole bound to it alone on the stack's Vault and
// returns the Secret data the chart's approle method reads.
func approleFor(t *testing.T, name, hcl string) map[string]string {
	t.Helper()
	enableAppRole(t)
	vaultRoot(t, http.MethodPut, "sys/policies/acl/"+name, map[string]any{"policy": hcl})
	vaultRoot(t, http.MethodPost, "auth/approle/role/"+name, map[string]any{"token_policies": []string{name},
		"token_no_default_policy": true, "token_ttl": "1h", "token_max_ttl": "4h"})
	rid := vaultRoot(t, http.MethodGet, "auth/approle/role/"+name+"/role-id", nil)["data"].(map[string]any)["role_id"].(string)
	sid := vaultRoot(t, http.MethodPost, "auth/approle/role/"+name+"/secret-id", map[string]any{})["data"].(map[string]any)["secret_id"].(string)
	return map[string]string{"role-id": rid, "secret-id": sid}
}

func enableAppRole(t *testing.T) {
	t.Helper()
	out := vaultRoot(t, http.MethodGet, "sys/auth", nil)
	if _, ok := out["approle/"]; !ok {
		vaultRoot(t, http.MethodPost, "sys/auth/approle", map[string]any{"type": "approle"})
	}
}

// quoted renders s as a YAML (JSON) string.
func quoted(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Each ci scenario of the umbrella chart (the shared broker, sidecars, TLS, sidecars with TLS,
// egress policies, Secrets the operator made), and the operator guide's values, run the way the charts configure it: the rendered
// migration Job, connection service, shared broker and sidecar broker are started with exactly
// the rendered args and environment (Services and ports on loopback, Secrets and ConfigMaps as
// files where their volumes mount), the brokers on AppRoles bound to the rendered Vault
// policies, and a worker call, an OAuth authorization and a sidecar call (over the unix socket)
// must work.
func TestRenderedConfig(t *testing.T) {
	root, err := devstack.Root()
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := stack.Issuer.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []string{"default", "sidecar", "tls", "sidecar-tls", "egress", "external-secret", "guide"} {
		t.Run(sc, func(t *testing.T) {
			// The scenario's values; "guide" is the operator guide's install values, as written.
			guide := sc == "guide"
			var values string
			if guide {
				values = guideValues(t, root)
			} else {
				b, err := os.ReadFile(filepath.Join(root, "charts", "integrationhub", "ci", sc+"-values.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				values = string(b)
			}
			app := oauthtest.Start(t, oauthtest.Options{})
			httpAddr, err := loopback.FreeAddrs(1)
			if err != nil {
				t.Fatal(err)
			}
			redirect := "http://" + httpAddr[0] + "/oauth2/callback"
			app.SetRedirectURIs(redirect)
			// What differs on this machine: the issuer (its key set inline), Vault (AppRoles, as
			// the test has no Kubernetes), the OAuth app and the callback's address; for the ci
			// scenarios also the Secrets an operator would create.
			overlay := fmt.Sprintf(`
connections:
  auth: {issuer: %[1]s, jwksURL: "", jwks: %[2]s}
  oauth: {redirectURL: %[3]s}
  catalog:
    connectors:
      - name: acme
        display_name: ACME (loopback OAuth app)
        auth_types: [oauth2_authorization_code]
        default_base_url: %[4]s
        oauth2: {authorize_url: %[4]s/authorize, token_url: %[4]s/token, scopes: [read, write], pkce: true}
        test_request: {method: GET, path: /userinfo}
broker:
  vault:
    address: %[5]s
    authMethod: approle
    approle: {existingSecret: e2e-broker-approle}
    # The test applies the rendered policies itself (AppRoles instead of Kubernetes roles).
    configure: {enabled: false}
  jobTokens: {issuer: %[1]s, jwksURL: "", jwks: %[2]s}
`, quoted(stack.Issuer.Issuer), quoted(string(jwks)), quoted(redirect), app.URL, quoted(stack.Vault.Addr))
			secretsOverlay := ""
			if !guide {
				secretsOverlay = `connections:
  database: {dsn: "", existingSecret: connections-postgres}
broker:
  connectionService: {address: hub-connections:7001, tokenSecret: broker-connections-token}
`
			}
			objs := helmTemplate(t, "integrationhub", values, overlay, secretsOverlay)
			c := newCluster(t, objs)

			// The Secrets the operator creates (guide, "Install"), for this machine.
			brokerTok, err := stack.Issuer.Mint(devstack.Audience, "credential-broker", jwtauth.AllWorkspaces,
				[]string{privilege.ViewConnections, privilege.ViewRuntimeUserConnections, privilege.ReportStatus}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			vaultFiles := findObject(t, objs, "ConfigMap", "hub-broker-vault").Data
			// The names the guide's install step gives them.
			c.secrets["connections-postgres"] = map[string]string{"dsn": pgtest.NewDatabase(t)}
			c.secrets["broker-connections-token"] = map[string]string{"token": brokerTok}
			c.secrets["connections-oauth-state"] = map[string]string{"state-key": base64.StdEncoding.EncodeToString([]byte(rand.Text() + rand.Text()))}
			c.secrets["e2e-broker-approle"] = approleFor(t, "e2e-rc-"+sc, vaultFiles["broker-policy.hcl"])
			if hcl, ok := vaultFiles["broker-sidecar-policy.hcl"]; ok {
				c.podSecs["hub-broker-recipe-worker"] = map[string]map[string]string{
					"e2e-broker-approle": approleFor(t, "e2e-rc-"+sc+"-sidecar", hcl)}
			}
			var clientCreds credentials.TransportCredentials = insecure.NewCredentials()
			if strings.HasSuffix(sc, "tls") || guide {
				p := newPKI(t)
				caPEM, _ := os.ReadFile(filepath.Join(p.dir, "ca.pem"))
				for _, name := range []string{"hub-connections-tls", "hub-broker-tls"} {
					cert, key := p.issue(t, strings.TrimSuffix(name, "-tls")) // CN hub-connections, hub-broker
					cb, _ := os.ReadFile(cert)
					kb, _ := os.ReadFile(key)
					c.secrets[name] = map[string]string{"tls.crt": string(cb), "tls.key": string(kb), "ca.crt": string(caPEM)}
				}
				c.secrets["vault-ca"] = map[string]string{"ca.crt": string(caPEM)}
				c.secrets["hub-connections-ca"] = map[string]string{"ca.crt": string(caPEM)}
				clientCreds = credentials.NewTLS(&tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12})
			}

			// The kubelet's view: hooks first (the migration Job), then the Deployments.
			svc := c.workload("Deployment", "hub-connections")
			shared := c.workload("Deployment", "hub-broker")
			worker := c.workload("Deployment", "hub-broker-recipe-worker")
			c.addrs[svc.component()+"/8080"] = httpAddr[0]
			for _, w := range []*workload{svc, shared, worker} {
				if w != nil {
					c.allocate(w)
				}
			}
			if job := c.workload("Job", "hub-connections-migrate"); job != nil {
				c.run(job, "migrate")
			}
			c.run(svc, "connections")
			c.run(shared, "broker")
			var sidecarEnv map[string]string
			if worker != nil {
				sidecarEnv = c.run(worker, "broker")
			}
			c.ready(svc, "connections")
			c.ready(shared, "broker")
			if worker != nil {
				c.ready(worker, "broker")
			}

			dialT := func(addr string) *grpc.ClientConn {
				cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(clientCreds))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cc.Close() })
				return cc
			}
			cs := connectionsv1.NewConnectionServiceClient(dialT(c.addrs["connection-service/7001"]))
			br := brokerv1.NewCredentialBrokerClient(dialT(c.addrs["broker/7002"]))

			// A worker call: a connection stored through the connection service and the
			// shared broker's admin API, a job token minted for its recipe, GetCredential.
			conn := mustCreate(t, cs, "ws-rendered-"+sc, "http", prod, key)
			ctx := job(t, cs, br, conn.GetId())
			got, err := br.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: conn.GetId()})
			if err != nil || got.GetCredential().GetApiKey().GetKey() != "k-http" {
				t.Fatalf("worker call on the shared broker: %v, %v\n%s", got.GetCredential().GetAuthType(), err, c.tail())
			}

			// The shared broker's admin API, as shipped, lets in only the connection service (whose
			// writes above went through): a caller without its token (with TLS, without its
			// certificate) is refused before anything is deleted.
			del := &brokerv1.DeleteSecretRequest{ConnectionId: conn.GetId(), AllGenerations: true}
			_, err = brokerv1.NewBrokerAdminClient(dialT(c.addrs["broker/7003"])).DeleteSecret(ctxT(t), del)
			if tlsOn := clientCreds.Info().SecurityProtocol == "tls"; tlsOn && err == nil || !tlsOn && status.Code(err) != codes.Unauthenticated {
				t.Fatalf("DeleteSecret on the shared broker's admin API without the token: %v, want a refusal", err)
			}

			// An OAuth authorization through the rendered callback and redirect URL.
			if _, err := cs.RegisterOAuthClient(ctxT(t), &connectionsv1.RegisterOAuthClientRequest{
				Connector: "acme", ClientId: app.ClientID, ClientSecret: app.ClientSecret}); err != nil {
				t.Fatalf("RegisterOAuthClient: %v\n%s", err, c.tail())
			}
			oc, err := cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-rendered-" + sc, Name: "ACME",
				Connector: "acme", Environment: prod, AuthType: oauth2})
			if err != nil {
				t.Fatal(err)
			}
			start, err := cs.StartAuthorization(ctxT(t), &connectionsv1.StartAuthorizationRequest{ConnectionId: oc.GetConnection().GetId()})
			if err != nil {
				t.Fatal(err)
			}
			e := &oauthEnv{app: app, agent: &http.Client{Timeout: 20 * time.Second}}
			if code, body := e.visit(t, start.GetAuthorizeUrl()); code != http.StatusOK || !strings.Contains(body, "connected as "+app.Subject) {
				t.Fatalf("authorization through the rendered callback: %d %s\n%s", code, body, c.tail())
			}

			// A sidecar call over the unix socket the worker container is pointed at.
			if worker != nil {
				// Where the worker container, through its own mounts, is told to dial.
				workerVar := func(name string) string {
					for _, ct := range worker.containers() {
						if ct.Name == "worker" {
							for _, kv := range c.env(worker, ct, c.mounts(worker, ct)) {
								if v, ok := strings.CutPrefix(kv, name+"="); ok {
									return v
								}
							}
						}
					}
					return ""
				}
				workerEnv := workerVar("INTEGRATIONHUB_BROKER_ADDR")
				sock := strings.TrimPrefix(workerEnv, "unix://")
				listen := strings.TrimPrefix(sidecarEnv["BROKER_LISTEN"], "unix:")
				if sock == "" || sock != listen {
					t.Fatalf("the worker dials %q, the sidecar listens on %q", workerEnv, sidecarEnv["BROKER_LISTEN"])
				}
				cc, err := grpc.NewClient("unix://"+listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Fatal(err)
				}
				defer cc.Close()
				got, err := brokerv1.NewCredentialBrokerClient(cc).GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: conn.GetId()})
				if err != nil || got.GetCredential().GetApiKey().GetKey() != "k-http" {
					t.Fatalf("sidecar call over the unix socket: %v\n%s", err, c.tail())
				}

				// The egress proxy on the second socket the worker is pointed at: it checks the
				// job token, then sends the request to the connection's app (api.example.com,
				// which does not resolve here: 502 from the broker, after authorizing).
				proxyEnv := workerVar("INTEGRATIONHUB_PROXY_ADDR")
				proxySock := strings.TrimPrefix(proxyEnv, "unix://")
				if proxySock == "" || proxySock != strings.TrimPrefix(sidecarEnv["BROKER_PROXY_LISTEN"], "unix:") {
					t.Fatalf("the worker's proxy is %q, the sidecar's %q", proxyEnv, sidecarEnv["BROKER_PROXY_LISTEN"])
				}
				viaProxy := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
					DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
						return (&net.Dialer{}).DialContext(ctx, "unix", proxySock)
					}}}
				for _, tc := range []struct {
					token     string
					want      int
					wantError string
				}{{"", http.StatusProxyAuthRequired, "Unauthenticated"}, {tokenOf(ctx), http.StatusBadGateway, "Unavailable"}} {
					req, _ := http.NewRequest(http.MethodGet, "http://proxy/"+conn.GetId()+"/v1/me", nil)
					if tc.token != "" {
						req.Header.Set("Proxy-Authorization", "Bearer "+tc.token)
					}
					resp, err := viaProxy.Do(req)
					if err != nil {
						t.Fatalf("the sidecar's egress proxy: %v\n%s", err, c.tail())
					}
					resp.Body.Close()
					if resp.StatusCode != tc.want || resp.Header.Get("X-Integrationhub-Error") != tc.wantError {
						t.Errorf("proxied request (token %t): %d %s, want %d %s", tc.token != "", resp.StatusCode,
							resp.Header.Get("X-Integrationhub-Error"), tc.want, tc.wantError)
					}
				}

				// The sidecar's admin API (a socket only the broker container mounts) serves
				// nobody, not even a caller with the release's admin token.
				adminSock := strings.TrimPrefix(sidecarEnv["BROKER_ADMIN_LISTEN"], "unix:")
				acc, err := grpc.NewClient("unix://"+adminSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Fatal(err)
				}
				defer acc.Close()
				tok := c.secrets["hub-admin-token"]["token"]
				actx := metadata.AppendToOutgoingContext(ctxT(t), "authorization", "Bearer "+tok)
				if _, err := brokerv1.NewBrokerAdminClient(acc).DeleteSecret(actx, del); tok == "" || status.Code(err) != codes.Unauthenticated {
					t.Fatalf("DeleteSecret on the sidecar's admin socket (token rendered: %t): %v, want Unauthenticated", tok != "", err)
				}
			}
		})
	}
}

// guideValues returns the operator guide's install values (the my-values.yaml block) as a
// values file, with its "sha256:..." digests filled in as a reader would.
func guideValues(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "operator-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "**Values** (`my-values.yaml`):")
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(rest)
	if !ok || m == nil {
		t.Fatal("the guide has no my-values.yaml block")
	}
	var lines []string
	for _, l := range strings.Split(m[1], "\n") {
		lines = append(lines, strings.TrimPrefix(l, "   "))
	}
	return strings.ReplaceAll(strings.Join(lines, "\n"), "sha256:...", "sha256:"+strings.Repeat("ab", 32))
}
