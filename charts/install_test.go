//go:build linux

package charts

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// TestRealInstall installs every chart, with its defaults and with each ci/*-values.yaml
// scenario, into a real Kubernetes API server (kube-apiserver on etcd, with
// kube-controller-manager, so that Deployments and Jobs create their Pods), each in a namespace
// that enforces the Pod Security "restricted" profile:
//   - install: every object is accepted with no warning; hooks (which helm would wait on, and no
//     kubelet runs) are created as objects too; every Pod the workloads generate is admitted;
//   - upgrade: the chart of the previous release (.ci/chart-baseline) installed with its own
//     scenario values, then upgraded to the current chart, with the same checks.
//
// The binaries come from scripts/kube-build.sh (the test script runs it): KUBE_BIN_DIR.
func TestRealInstall(t *testing.T) {
	dir := os.Getenv("KUBE_BIN_DIR")
	if dir == "" {
		t.Fatal("KUBE_BIN_DIR is not set: run `export KUBE_BIN_DIR=$(bash scripts/kube-build.sh)` (scripts/test.sh does)")
	}
	c := startCluster(t, dir)
	baseline := baselineCharts(t)

	for i, s := range allScenarios(t) {
		t.Run(s.String(), func(t *testing.T) {
			t.Parallel()
			t.Run("install", func(t *testing.T) {
				ns := c.namespace(t, fmt.Sprintf("install-%d", i))
				rel := c.install(t, ns, loadChart(t, s.chart), scenarioValues(t, s.chart, s.valuesFile))
				c.createHooks(t, ns, rel)
				c.podsAdmitted(t, ns)
			})
			t.Run("upgrade from the previous release", func(t *testing.T) {
				oldValues, ok := baseline.values(t, s)
				if !ok {
					t.Skipf("scenario %s is new since the previous release", s)
				}
				ns := c.namespace(t, fmt.Sprintf("upgrade-%d", i))
				c.install(t, ns, loadChart(t, filepath.Join(baseline.dir, s.chart)), oldValues)
				rel := c.upgrade(t, ns, loadChart(t, s.chart), scenarioValues(t, s.chart, s.valuesFile))
				c.createHooks(t, ns, rel)
				c.podsAdmitted(t, ns)
			})
		})
	}
}

func scenarioValues(t testing.TB, chartDir, valuesFile string) map[string]any {
	if valuesFile == "" {
		return map[string]any{}
	}
	return readValues(t, filepath.Join(chartDir, valuesFile))
}

// baseline is the charts as of the previous release, checked out of git.
type baseline struct{ dir string }

func baselineCharts(t *testing.T) baseline {
	t.Helper()
	rev, err := os.ReadFile("../.ci/chart-baseline")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The charts folder's tree: the archive holds connections/, broker/, integrationhub/.
	archive := exec.Command("git", "archive", strings.TrimSpace(string(rev))+":charts")
	archive.Dir = ".." // from the top: in a subfolder git archives only that part of the tree
	var out, errOut bytes.Buffer
	archive.Stdout, archive.Stderr = &out, &errOut
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive of the chart baseline %s (a shallow clone?): %v\n%s", strings.TrimSpace(string(rev)), err, errOut.String())
	}
	untar := exec.Command("tar", "-x", "-C", dir)
	untar.Stdin = &out
	if b, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
	return baseline{dir: dir}
}

// values returns the scenario's values file as it was in the baseline (the baseline chart's
// schema judges it), or false when the scenario did not exist then.
func (b baseline) values(t *testing.T, s scenario) (map[string]any, bool) {
	if s.valuesFile == "" {
		return map[string]any{}, true
	}
	path := filepath.Join(b.dir, s.chart, s.valuesFile)
	if _, err := os.Stat(path); err != nil {
		return nil, false
	}
	return readValues(t, path), true
}

// cluster is a kube-apiserver with its etcd and controller manager, on loopback.
type cluster struct {
	kubeconfig string
	client     *kubernetes.Clientset

	mu       sync.Mutex
	warnings []string // every warning the API server sent, in order
}

func startCluster(t *testing.T, binDir string) *cluster {
	t.Helper()
	work := t.TempDir()
	ports := freePorts(t, 3)
	etcdURL := "http://127.0.0.1:" + ports[0]
	peerURL := "http://127.0.0.1:" + ports[1]
	run(t, work, "etcd", "etcd", "--name=e2e", "--data-dir="+filepath.Join(work, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL, "--initial-cluster=e2e="+peerURL)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(work, "sa.key")
	writeFile(t, saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	token := rand.Text()
	tokens := filepath.Join(work, "tokens.csv")
	writeFile(t, tokens, []byte(token+",e2e-admin,e2e-admin,system:masters\n"))
	apiURL := "https://127.0.0.1:" + ports[2]
	run(t, work, "kube-apiserver", filepath.Join(binDir, "kube-apiserver"),
		"--etcd-servers="+etcdURL, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+ports[2],
		"--cert-dir="+filepath.Join(work, "certs"), "--service-cluster-ip-range=10.96.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file="+saKey,
		"--service-account-signing-key-file="+saKey, "--token-auth-file="+tokens, "--authorization-mode=RBAC",
		"--endpoint-reconciler-type=none")

	c := &cluster{kubeconfig: filepath.Join(work, "kubeconfig")}
	writeFile(t, c.kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: e2e, user: {token: %q}}]
contexts: [{name: e2e, context: {cluster: e2e, user: e2e}}]
current-context: e2e
`, apiURL, token)))
	// Every warning the API server sends (PodSecurity's among them) is kept.
	rest.SetDefaultWarningHandler(c)

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	waitUntil(t, 2*time.Minute, "the API server to be ready", func() bool {
		req, _ := http.NewRequest(http.MethodGet, apiURL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	run(t, work, "kube-controller-manager", filepath.Join(binDir, "kube-controller-manager"),
		"--kubeconfig="+c.kubeconfig, "--leader-elect=false", "--service-account-private-key-file="+saKey,
		"--use-service-account-credentials=false", "--bind-address=127.0.0.1", "--secure-port=0",
		"--controllers=namespace-controller,serviceaccount-controller,deployment-controller,replicaset-controller,job-controller,garbage-collector-controller")

	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	c.monitoringCRDs(t)
	return c
}

// HandleWarningHeader keeps an API server warning (rest.WarningHandler).
func (c *cluster) HandleWarningHeader(code int, agent, text string) {
	if code != 299 || text == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.warnings = append(c.warnings, text)
}

// warningsSince returns the warnings sent after mark (from warningMark). The scenarios run in
// parallel, so a warning may show in a neighbour's subtest too; any warning fails the test.
func (c *cluster) warningsSince(mark int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.warnings[mark:]...)
}

func (c *cluster) warningMark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.warnings)
}

// namespace creates a namespace that enforces, warns about and audits the restricted profile.
func (c *cluster) namespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/audit": "restricted",
	}}}
	if _, err := c.client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

func (c *cluster) helm(t *testing.T, ns string) *action.Configuration {
	t.Helper()
	cfg := new(action.Configuration)
	if err := cfg.Init(kube.GetConfig(c.kubeconfig, "", ns), ns, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// install runs helm install without hooks (helm would wait for hook Jobs to finish, and no
// kubelet runs them); createHooks creates them afterwards. The API server must not warn.
func (c *cluster) install(t *testing.T, ns string, ch *chart.Chart, vals map[string]any) *release.Release {
	t.Helper()
	in := action.NewInstall(c.helm(t, ns))
	in.ReleaseName, in.Namespace, in.DisableHooks, in.Timeout = releaseName, ns, true, time.Minute
	return c.noWarnings(t, "helm install", func() (*release.Release, error) {
		return in.RunWithContext(t.Context(), ch, vals)
	})
}

func (c *cluster) upgrade(t *testing.T, ns string, ch *chart.Chart, vals map[string]any) *release.Release {
	t.Helper()
	up := action.NewUpgrade(c.helm(t, ns))
	up.Namespace, up.DisableHooks, up.Timeout = ns, true, time.Minute
	return c.noWarnings(t, "helm upgrade", func() (*release.Release, error) {
		return up.RunWithContext(t.Context(), releaseName, ch, vals)
	})
}

// noWarnings runs a helm action and fails on its error or any warning the API server sent.
func (c *cluster) noWarnings(t *testing.T, what string, do func() (*release.Release, error)) *release.Release {
	t.Helper()
	mark := c.warningMark()
	rel, err := do()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, w := range c.warningsSince(mark) {
		t.Errorf("%s: the API server warned: %s", what, w)
	}
	return rel
}

// createHooks creates the release's hooks (the migration Job, the Vault configure Job, test
// Pods) as plain objects, so that admission judges them and the Job controller makes their Pods.
func (c *cluster) createHooks(t *testing.T, ns string, rel *release.Release) {
	t.Helper()
	cfg := c.helm(t, ns)
	for _, h := range rel.Hooks {
		if isTestHook(h) {
			continue // `helm test` Pods: created only by `helm test`, judged by the render tests
		}
		res, err := cfg.KubeClient.Build(strings.NewReader(h.Manifest), true)
		if err != nil {
			t.Fatalf("hook %s: %v", h.Path, err)
		}
		mark := c.warningMark()
		if _, err := cfg.KubeClient.Create(res); err != nil {
			t.Errorf("hook %s refused: %v", h.Path, err)
		}
		for _, w := range c.warningsSince(mark) {
			t.Errorf("hook %s: the API server warned: %s", h.Path, w)
		}
	}
}

func isTestHook(h *release.Hook) bool {
	for _, e := range h.Events {
		if e == release.HookTest {
			return true
		}
	}
	return false
}

// podsAdmitted waits until every Deployment has its replicas' Pods and every Job a Pod, and
// fails on any FailedCreate event (a Pod the admission refused).
func (c *cluster) podsAdmitted(t *testing.T, ns string) {
	t.Helper()
	ctx := t.Context()
	deps, err := c.client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := c.client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{} // label selector -> pods
	for _, d := range deps.Items {
		want[selectorOf(t, d.Spec.Selector)] = int(replicas(d))
	}
	for _, j := range jobs.Items {
		want[selectorOf(t, j.Spec.Selector)] = 1
	}
	if len(want) == 0 {
		t.Fatal("no workloads installed")
	}
	var missing []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		missing = missing[:0]
		for sel, n := range want {
			pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err != nil {
				t.Fatal(err)
			}
			if len(pods.Items) < n {
				missing = append(missing, fmt.Sprintf("%s: %d of %d pods", sel, len(pods.Items), n))
			}
		}
		events, err := c.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			t.Errorf("%s/%s: %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
		}
		if len(events.Items) > 0 {
			return
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods not created: %s", strings.Join(missing, "; "))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond): // polling the API server, bounded by the deadline
		}
	}
}

func replicas(d appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func selectorOf(t *testing.T, s *metav1.LabelSelector) string {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil || sel.Empty() {
		t.Fatalf("selector %v: %v", s, err)
	}
	return sel.String()
}

// monitoringCRDs installs the Prometheus Operator's kinds that the charts use, with schemas
// that keep any field (the render tests decode them strictly against the operator's types).
func (c *cluster) monitoringCRDs(t *testing.T) {
	t.Helper()
	var docs []string
	for _, k := range []struct{ kind, plural string }{
		{"ServiceMonitor", "servicemonitors"}, {"PodMonitor", "podmonitors"}, {"PrometheusRule", "prometheusrules"},
	} {
		docs = append(docs, fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %[2]s.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: %[1]s, plural: %[2]s, listKind: %[1]sList, singular: %[3]s}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`, k.kind, k.plural, strings.ToLower(k.kind)))
	}
	cfg := c.helm(t, "default")
	res, err := cfg.KubeClient.Build(strings.NewReader(strings.Join(docs, "---\n")), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.KubeClient.Create(res); err != nil {
		t.Fatal(err)
	}
	if err := cfg.KubeClient.Wait(res, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The discovery cache must see the new kinds before helm maps them.
	waitUntil(t, time.Minute, "the monitoring kinds to be served", func() bool {
		_, err := c.client.Discovery().ServerResourcesForGroupVersion("monitoring.coreos.com/v1")
		return err == nil
	})
}

// run starts a process that dies with the test (and with the test binary: Pdeathsig).
func run(t *testing.T, dir, name, bin string, args ...string) {
	t.Helper()
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = log, log, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
}

// freePorts returns n free loopback ports below the kernel's ephemeral range
// (as internal/loopback does for the other tests, in another module): a port
// in that range can be taken by any outgoing connection before etcd or the
// API server binds it.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	start := 49152
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if p, err := strconv.Atoi(f[0]); err == nil {
				start = p
			}
		}
	}
	var out []string
	for tries := 0; len(out) < n && tries < 1000; tries++ {
		port := strconv.Itoa(10000 + mathrand.IntN(max(start-10000, 1000)))
		if slices.Contains(out, port) {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue // taken
		}
		l.Close()
		out = append(out, port)
	}
	if len(out) < n {
		t.Fatal("no free loopback ports")
	}
	return out
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(200 * time.Millisecond): // polling, bounded by the deadline
		}
	}
}

func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test's own API server, self-signed on loopback
}
