package charts

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Every chart, with its defaults and with each ci/*-values.yaml scenario, renders manifests that
// decode strictly into their API types and keep the production defaults.
func TestScenarios(t *testing.T) {
	for _, s := range allScenarios(t) {
		t.Run(s.String(), func(t *testing.T) {
			ms, notes := renderScenario(t, s)
			if len(ms) == 0 {
				t.Fatal("no manifests")
			}
			if strings.TrimSpace(notes) == "" {
				t.Error("no NOTES.txt output")
			}
			pods := podsOf(ms)
			if len(pods) == 0 {
				t.Fatal("no workloads rendered")
			}
			for _, p := range pods {
				checkPodSecurity(t, p)
				checkSecretsFromSecrets(t, p)
			}
			for _, p := range pods {
				if p.kind == "Deployment" {
					checkProbes(t, p)
					checkTLSWiring(t, p)
					checkAntiAffinity(t, p)
				}
			}
			checkMetricsScraped(t, ms, pods)
			checkMigrationHook(t, ms)
			checkNetworkPolicies(t, ms, pods)
			checkConnectionServiceClients(t, ms, pods)
		})
	}
}

// pod is a pod template (or a Pod) found in the manifests.
type pod struct {
	kind, name  string
	hook        string
	labels      map[string]string
	annotations map[string]string
	spec        *corev1.PodSpec
}

func (p pod) String() string { return p.kind + "/" + p.name }

func (p pod) component() string { return p.labels["app.kubernetes.io/component"] }

// ours reports whether a container runs one of this project's binaries (the example worker's
// own container and test pods run other images).
func ours(c corev1.Container) bool { return c.Name == "broker" || c.Name == "connections" }

func podsOf(ms []manifest) []pod {
	var out []pod
	for _, m := range ms {
		switch o := m.obj.(type) {
		case *appsv1.Deployment:
			out = append(out, pod{"Deployment", o.Name, m.hook, o.Spec.Template.Labels, o.Spec.Template.Annotations, &o.Spec.Template.Spec})
		case *batchv1.Job:
			out = append(out, pod{"Job", o.Name, m.hook, o.Spec.Template.Labels, o.Spec.Template.Annotations, &o.Spec.Template.Spec})
		case *corev1.Pod:
			out = append(out, pod{"Pod", o.Name, m.hook, o.Labels, o.Annotations, &o.Spec})
		}
	}
	return out
}

func allContainers(s *corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(s.InitContainers), s.Containers...)
}

// checkPodSecurity: non-root, read-only root filesystem, no privilege escalation, every
// capability dropped, RuntimeDefault seccomp, requests and limits, no Kubernetes API token.
func checkPodSecurity(t *testing.T, p pod) {
	t.Helper()
	ps := p.spec.SecurityContext
	if p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false", p)
	}
	if p.kind != "Pod" && (p.spec.ServiceAccountName == "" || p.spec.ServiceAccountName == "default") {
		t.Errorf("%s: runs as the default service account", p)
	}
	if p.spec.HostNetwork || p.spec.HostPID || p.spec.HostIPC {
		t.Errorf("%s: uses host namespaces", p)
	}
	for _, c := range allContainers(p.spec) {
		where := fmt.Sprintf("%s container %s", p, c.Name)
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", where)
			continue
		}
		nonRoot := sc.RunAsNonRoot != nil && *sc.RunAsNonRoot ||
			sc.RunAsNonRoot == nil && ps != nil && ps.RunAsNonRoot != nil && *ps.RunAsNonRoot
		if !nonRoot {
			t.Errorf("%s: runAsNonRoot is not true", where)
		}
		uid := sc.RunAsUser
		if uid == nil && ps != nil {
			uid = ps.RunAsUser
		}
		if uid == nil || *uid == 0 {
			t.Errorf("%s: no non-zero runAsUser (images with a named USER fail runAsNonRoot without one)", where)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", where)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none, got %+v", where, sc.Capabilities)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil && ps != nil {
			seccomp = ps.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccomp profile is not RuntimeDefault", where)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
				t.Errorf("%s: no %s request", where, r)
			}
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
			t.Errorf("%s: no memory limit", where)
		}
	}
}

// checkSecretsFromSecrets: the DSN and Vault credentials never appear as plain values.
func checkSecretsFromSecrets(t *testing.T, p pod) {
	t.Helper()
	secretEnv := []string{"CONNECTIONS_DATABASE", "VAULT_TOKEN", "BROKER_VAULT_APPROLE_ROLE_ID", "BROKER_VAULT_APPROLE_SECRET_ID",
		"BROKER_ADMIN_TOKEN", "CONNECTIONS_BROKER_ADMIN_TOKEN"}
	for _, c := range allContainers(p.spec) {
		for _, e := range c.Env {
			if slices.Contains(secretEnv, e.Name) && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				t.Errorf("%s container %s: %s must come from a secretKeyRef", p, c.Name, e.Name)
			}
		}
	}
}

func env(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func containerPort(c corev1.Container, port int32) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

// checkProbes: the project's containers have gRPC liveness and readiness probes on a declared
// port whose listener serves grpc.health.v1, in plain text (the kubelet's gRPC probe has no TLS).
func checkProbes(t *testing.T, p pod) {
	t.Helper()
	for _, c := range allContainers(p.spec) {
		if !ours(c) {
			continue
		}
		where := fmt.Sprintf("%s container %s", p, c.Name)
		probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
		if c.Name == "broker" {
			probes["startup"] = c.StartupProbe
		}
		for kind, pr := range probes {
			if pr == nil || pr.GRPC == nil {
				t.Errorf("%s: no gRPC %s probe", where, kind)
				continue
			}
			if pr.Exec != nil || pr.HTTPGet != nil || pr.TCPSocket != nil {
				t.Errorf("%s: %s probe is not only gRPC", where, kind)
			}
			// Liveness asks for the overall status (SERVING while the process runs); the
			// broker's readiness and startup ask for its worker API, which is NOT_SERVING while
			// the broker holds no valid Vault token.
			want := ""
			if c.Name == "broker" && kind != "liveness" {
				want = "integrationhub.broker.v1.CredentialBroker"
			}
			if got := ptrOr(pr.GRPC.Service); got != want {
				t.Errorf("%s: %s probe asks for service %q, want %q", where, kind, got, want)
			}
			port, ok := containerPort(c, pr.GRPC.Port)
			if !ok {
				t.Errorf("%s: %s probe port %d is not a container port", where, kind, pr.GRPC.Port)
				continue
			}
			// The probed port must be a plain-text gRPC listener: the API port without TLS, or
			// the dedicated health listener.
			healthEnv := map[string]string{"broker": "BROKER_HEALTH_LISTEN", "connections": "CONNECTIONS_HEALTH_LISTEN"}[c.Name]
			tlsEnv := map[string]string{"broker": "BROKER_TLS_CERT_FILE", "connections": "CONNECTIONS_TLS_CERT_FILE"}[c.Name]
			health, dedicated := env(c, healthEnv)
			_, tlsOn := env(c, tlsEnv)
			switch {
			case dedicated && health != fmt.Sprintf(":%d", port.ContainerPort):
				t.Errorf("%s: %s probe on port %d but %s=%s", where, kind, port.ContainerPort, healthEnv, health)
			case !dedicated && tlsOn:
				t.Errorf("%s: TLS is on but the %s probe hits the TLS port %d", where, kind, port.ContainerPort)
			}
		}
	}
}

// checkAntiAffinity: the services' replicas prefer different nodes by default.
func checkAntiAffinity(t *testing.T, p pod) {
	t.Helper()
	if c := p.component(); c != "broker" && c != "connection-service" {
		return
	}
	a := p.spec.Affinity
	if a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Errorf("%s: no pod anti-affinity", p)
		return
	}
	term := a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	if !subset(term.LabelSelector.MatchLabels, p.labels) {
		t.Errorf("%s: anti-affinity selects %v, not its own replicas", p, term.LabelSelector.MatchLabels)
	}
}

func ptrOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// checkTLSWiring: when a container is told to use TLS, the files it names are mounted.
func checkTLSWiring(t *testing.T, p pod) {
	t.Helper()
	for _, c := range allContainers(p.spec) {
		for _, e := range c.Env {
			files := strings.Contains(e.Name, "_TLS_") && strings.HasSuffix(e.Name, "_FILE") || e.Name == "VAULT_CACERT" ||
				strings.HasPrefix(e.Name, "BROKER_CONNECTIONS_") && strings.HasSuffix(e.Name, "_FILE") ||
				e.Name == "BROKER_JWKS" && strings.HasPrefix(e.Value, "/")
			if !files {
				continue
			}
			mounted := false
			for _, m := range c.VolumeMounts {
				if strings.HasPrefix(e.Value, m.MountPath+"/") {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("%s container %s: %s=%s is on no mounted volume", p, c.Name, e.Name, e.Value)
			}
		}
	}
}

// checkMetricsScraped: a server that serves metrics is scraped, by annotations or by a
// ServiceMonitor selecting a Service in front of it.
func checkMetricsScraped(t *testing.T, ms []manifest, pods []pod) {
	t.Helper()
	monitors := objects[*monitoringv1.ServiceMonitor](ms)
	services := objects[*corev1.Service](ms)
	for _, p := range pods {
		if p.kind != "Deployment" {
			continue
		}
		for _, c := range allContainers(p.spec) {
			addr, ok := env(c, "METRICS_LISTEN")
			if !ok {
				continue
			}
			if p.annotations["prometheus.io/scrape"] == "true" {
				if want := strings.TrimPrefix(addr, ":"); p.annotations["prometheus.io/port"] != want {
					t.Errorf("%s: prometheus.io/port %q, metrics on %q", p, p.annotations["prometheus.io/port"], addr)
				}
				continue
			}
			scraped := false
			for _, m := range monitors {
				for _, s := range services {
					if subset(m.Spec.Selector.MatchLabels, s.Labels) && subset(s.Spec.Selector, p.labels) {
						scraped = true
					}
				}
			}
			if !scraped {
				t.Errorf("%s: serves metrics on %s but neither annotations nor a ServiceMonitor scrape it", p, addr)
			}
		}
	}
}

func subset(want, have map[string]string) bool {
	if len(want) == 0 {
		return false
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// checkMigrationHook: the connection service's schema migrations run as a pre-install and
// pre-upgrade hook Job, with the same DSN Secret key as the server.
func checkMigrationHook(t *testing.T, ms []manifest) {
	t.Helper()
	for _, m := range ms {
		job, ok := m.obj.(*batchv1.Job)
		if !ok || job.Spec.Template.Labels["app.kubernetes.io/component"] != "migrate" {
			continue
		}
		if m.hook != "pre-install,pre-upgrade" {
			t.Errorf("%s: migration Job hook events %q, want pre-install,pre-upgrade", job.Name, m.hook)
		}
		c := job.Spec.Template.Spec.Containers[0]
		if !slices.Equal(c.Args, []string{"-migrate-only"}) {
			t.Errorf("%s: args %q, want [-migrate-only]", job.Name, c.Args)
		}
		if _, ok := env(c, "CONNECTIONS_DATABASE"); !ok {
			t.Errorf("%s: no CONNECTIONS_DATABASE", job.Name)
		}
		// The Job migrates; the pods must not (their user needs no DDL rights).
		for _, d := range objects[*appsv1.Deployment](ms) {
			for _, dc := range d.Spec.Template.Spec.Containers {
				if v, _ := env(dc, "CONNECTIONS_SKIP_MIGRATIONS"); dc.Name == "connections" && v != "true" {
					t.Errorf("%s: migrations run as a Job but the pods still migrate at startup (CONNECTIONS_SKIP_MIGRATIONS=%q)", d.Name, v)
				}
			}
		}
		if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: restartPolicy %q", job.Name, job.Spec.Template.Spec.RestartPolicy)
		}
	}
}

// find returns the objects of type T whose name is name.
func find[T interface {
	runtime.Object
	GetName() string
}](ms []manifest, name string) T {
	for _, o := range objects[T](ms) {
		if o.GetName() == name {
			return o
		}
	}
	var zero T
	return zero
}

func deploymentContainer(t *testing.T, d *appsv1.Deployment, name string) corev1.Container {
	t.Helper()
	for _, c := range allContainers(&d.Spec.Template.Spec) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("deployment %s has no container %s", d.Name, name)
	return corev1.Container{}
}

// What particular scenarios must render, beyond the checks every scenario gets.
func TestScenarioSpecifics(t *testing.T) {
	t.Run("connections/defaults", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "connections"})
		d := find[*appsv1.Deployment](ms, "hub-connections")
		if d == nil || *d.Spec.Replicas != 2 {
			t.Fatalf("want the Deployment with 2 replicas, got %v", d)
		}
		c := deploymentContainer(t, d, "connections")
		for k, v := range map[string]string{
			"CONNECTIONS_LISTEN": ":7001", "CONNECTIONS_HTTP_LISTEN": ":8080",
			"CONNECTIONS_JWT_ISSUER": "https://auth.integrationhub.example",
			"CONNECTIONS_JWKS":       "https://auth.integrationhub.example/.well-known/jwks.json",
		} {
			if got, _ := env(c, k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if v, _ := env(c, "CONNECTIONS_BROKER_ADMIN_ADDR"); v != "hub-broker:7003" {
			t.Errorf("CONNECTIONS_BROKER_ADMIN_ADDR = %q, want the same release's broker", v)
		}
		ref := dsnRef(t, c)
		if ref.Name != "hub-connections-database" || ref.Key != "dsn" {
			t.Errorf("DSN from %s/%s", ref.Name, ref.Key)
		}
		if s := find[*corev1.Secret](ms, "hub-connections-database"); s == nil || !strings.HasPrefix(string(s.Data["dsn"]), "postgres://") {
			t.Errorf("the chart's DSN Secret is missing or empty: %v", s)
		}
		svc := find[*corev1.Service](ms, "hub-connections")
		if svc == nil || !hasServicePort(svc, "grpc", 7001) || !hasServicePort(svc, "http", 8080) {
			t.Errorf("Service must expose grpc 7001 and http 8080: %v", svc)
		}
		if find[*networkingv1.Ingress](ms, "hub-connections") != nil {
			t.Error("the Ingress is optional and off by default")
		}
		if find[*policyv1.PodDisruptionBudget](ms, "hub-connections") == nil {
			t.Error("no PodDisruptionBudget")
		}
	})

	t.Run("broker/connection-service", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "broker", valuesFile: "ci/connection-service-values.yaml"})
		d := find[*appsv1.Deployment](ms, "hub-broker")
		if d == nil {
			t.Fatal("no broker Deployment")
		}
		c := deploymentContainer(t, d, "broker")
		for _, e := range []string{"BROKER_CONNECTIONS_ADDR", "BROKER_CONNECTIONS_TOKEN_FILE", "BROKER_CACHE_TTL", "BROKER_JWT_ISSUER", "BROKER_JWT_AUDIENCE"} {
			if _, ok := env(c, e); !ok {
				t.Errorf("connectionService.address set but no %s", e)
			}
		}
		if d.Spec.Template.Labels["integrationhub.io/connections-client"] != "true" {
			t.Error("broker pods lack the label that admits them through the connection service's NetworkPolicy")
		}
		if jwks, _ := env(c, "BROKER_JWKS"); jwks != "/etc/integrationhub/scheduler/jwks.json" {
			t.Errorf("BROKER_JWKS = %q, want the mounted inline key set", jwks)
		}
		if cm := find[*corev1.ConfigMap](ms, "hub-broker-scheduler"); cm == nil || !strings.Contains(cm.Data["jwks.json"], "keys") {
			t.Errorf("no ConfigMap with the scheduler's keys: %v", cm)
		}
		mounted := false
		for _, m := range c.VolumeMounts {
			mounted = mounted || m.MountPath == "/etc/integrationhub/connections-token"
		}
		if !mounted {
			t.Error("the service token is not mounted where BROKER_CONNECTIONS_TOKEN_FILE points")
		}
	})

	t.Run("connections/external-secret", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "connections", valuesFile: "ci/external-secret-values.yaml"})
		if secrets := objects[*corev1.Secret](ms); len(secrets) != 0 {
			t.Errorf("with database.existingSecret the chart must create no Secret, got %d", len(secrets))
		}
		for _, p := range podsOf(ms) {
			for _, c := range p.spec.Containers {
				if _, ok := env(c, "CONNECTIONS_DATABASE"); !ok {
					continue
				}
				if ref := dsnRef(t, c); ref.Name != "connections-postgres" || ref.Key != "url" {
					t.Errorf("%s: DSN from %s/%s, want connections-postgres/url", p, ref.Name, ref.Key)
				}
			}
		}
		if find[*batchv1.Job](ms, "hub-connections-migrate") == nil {
			t.Error("no migration Job")
		}
		c := deploymentContainer(t, find[*appsv1.Deployment](ms, "hub-connections"), "connections")
		jwks, _ := env(c, "CONNECTIONS_JWKS")
		cm := find[*corev1.ConfigMap](ms, "hub-connections-auth")
		if cm == nil || !strings.Contains(cm.Data["jwks.json"], `"keys"`) || !strings.HasSuffix(jwks, "/jwks.json") {
			t.Errorf("inline JWKS: want a ConfigMap and CONNECTIONS_JWKS naming its file, got %q and %v", jwks, cm)
		}
	})

	t.Run("connections/migration-credential", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "connections", valuesFile: "ci/migration-credential-values.yaml"})
		job := find[*batchv1.Job](ms, "hub-connections-migrate")
		if job == nil {
			t.Fatal("no migration Job")
		}
		if ref := dsnRef(t, job.Spec.Template.Spec.Containers[0]); ref.Name != "connections-postgres-owner" || ref.Key != "owner-dsn" {
			t.Errorf("the Job's DSN from %s/%s, want the schema owner's connections-postgres-owner/owner-dsn", ref.Name, ref.Key)
		}
		c := deploymentContainer(t, find[*appsv1.Deployment](ms, "hub-connections"), "connections")
		if ref := dsnRef(t, c); ref.Name != "connections-postgres" {
			t.Errorf("the pods' DSN from %s, want the runtime user's connections-postgres", ref.Name)
		}
		for _, sec := range objects[*corev1.Secret](ms) {
			if sec.Name != "hub-connections-oauth-state" {
				t.Errorf("both DSNs come from existing Secrets, yet the chart renders Secret %s", sec.Name)
			}
		}
	})

	t.Run("connections/tls", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "connections", valuesFile: "ci/tls-values.yaml"})
		c := deploymentContainer(t, find[*appsv1.Deployment](ms, "hub-connections"), "connections")
		for _, e := range []string{"CONNECTIONS_TLS_CERT_FILE", "CONNECTIONS_TLS_KEY_FILE", "CONNECTIONS_TLS_CA_FILE", "CONNECTIONS_HEALTH_LISTEN"} {
			if _, ok := env(c, e); !ok {
				t.Errorf("TLS on but no %s", e)
			}
		}
		ing := find[*networkingv1.Ingress](ms, "hub-connections")
		if ing == nil {
			t.Fatal("no Ingress")
		}
		path := ing.Spec.Rules[0].HTTP.Paths[0]
		// Prefix matching is by whole path elements: "/oauth" would not reach /oauth2/callback.
		if path.Backend.Service.Port.Name != "http" || path.Path != "/oauth2" {
			t.Errorf("the Ingress must route only the callback path to the http port, got %s -> %+v", path.Path, path.Backend.Service.Port)
		}
		if v, _ := env(c, "CONNECTIONS_OAUTH_REDIRECT_URL"); v != "https://"+ing.Spec.Rules[0].Host+"/oauth2/callback" {
			t.Errorf("CONNECTIONS_OAUTH_REDIRECT_URL = %q, want the ingress host's callback", v)
		}
		var stateKey *corev1.EnvVar
		for i := range c.Env {
			if c.Env[i].Name == "CONNECTIONS_OAUTH_STATE_KEY" {
				stateKey = &c.Env[i]
			}
		}
		if stateKey == nil || stateKey.ValueFrom == nil || stateKey.ValueFrom.SecretKeyRef == nil {
			t.Error("CONNECTIONS_OAUTH_STATE_KEY does not come from a Secret")
		} else if find[*corev1.Secret](ms, stateKey.ValueFrom.SecretKeyRef.Name) == nil {
			t.Errorf("the state key Secret %s is not rendered", stateKey.ValueFrom.SecretKeyRef.Name)
		}
		if objects[*monitoringv1.ServiceMonitor](ms) == nil {
			t.Error("no ServiceMonitor")
		}
	})

	t.Run("broker/defaults", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "broker"})
		d := find[*appsv1.Deployment](ms, "hub-broker")
		if d == nil {
			t.Fatal("no shared broker Deployment")
		}
		if d.Spec.Replicas != nil {
			t.Error("with the HPA on, the Deployment must not set replicas (an upgrade would reset the scale)")
		}
		c := deploymentContainer(t, d, "broker")
		want := map[string]string{
			"BROKER_LISTEN": ":7002", "BROKER_ADMIN_LISTEN": ":7003", "VAULT_ADDR": "https://vault.vault.svc:8200",
			"BROKER_VAULT_KV_MOUNT": "secret", "BROKER_VAULT_PATH_PREFIX": "integrationhub",
			"BROKER_VAULT_AUTH_METHOD": "kubernetes", "BROKER_VAULT_K8S_ROLE": "hub-broker", "BROKER_VAULT_K8S_MOUNT": "kubernetes",
		}
		for k, v := range want {
			if got, _ := env(c, k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		svc := find[*corev1.Service](ms, "hub-broker")
		if svc == nil || !hasServicePort(svc, "grpc", 7002) || !hasServicePort(svc, "admin", 7003) {
			t.Errorf("Service must expose grpc 7002 and admin 7003: %v", svc)
		}
		hpa := find[*autoscalingv2.HorizontalPodAutoscaler](ms, "hub-broker")
		if hpa == nil || hpa.Spec.ScaleTargetRef.Name != "hub-broker" || hpa.Spec.ScaleTargetRef.Kind != "Deployment" {
			t.Errorf("no HPA targeting the broker Deployment: %v", hpa)
		}
		pdb := find[*policyv1.PodDisruptionBudget](ms, "hub-broker")
		if pdb == nil || !subset(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("no PDB selecting the broker pods: %v", pdb)
		}
		cm := find[*corev1.ConfigMap](ms, "hub-broker-vault")
		if cm == nil {
			t.Fatal("no ConfigMap with the Vault policy")
		}
		checkPolicy(t, cm.Data["broker-policy.hcl"], sharedPolicy)
		if _, ok := cm.Data["broker-sidecar-policy.hcl"]; ok {
			t.Error("no sidecar service accounts, yet a sidecar policy")
		}
	})

	t.Run("broker/sidecar", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "broker", valuesFile: "ci/sidecar-values.yaml"})
		if d := find[*appsv1.Deployment](ms, "hub-broker"); d != nil {
			t.Error("shared.enabled=false still renders the shared Deployment")
		}
		if objects[*autoscalingv2.HorizontalPodAutoscaler](ms) != nil || objects[*policyv1.PodDisruptionBudget](ms) != nil {
			t.Error("shared.enabled=false still renders an HPA or PDB")
		}
		checkSidecarPod(t, find[*appsv1.Deployment](ms, "hub-broker-recipe-worker"), true)
		cm := find[*corev1.ConfigMap](ms, "hub-broker-vault")
		if cm == nil || cm.Data["broker-sidecar-role.json"] == "" || !strings.Contains(cm.Data["broker-sidecar-role.json"], `"hub-broker-recipe-worker"`) {
			t.Errorf("the sidecar role must bind the example's service account: %v", cm)
		}
		if _, ok := cm.Data["broker-role.json"]; ok {
			t.Error("shared.enabled=false still writes the shared broker's role")
		}
		checkPolicy(t, cm.Data["broker-sidecar-policy.hcl"], sidecarPolicy)
		job := find[*batchv1.Job](ms, "hub-broker-vault-configure")
		if job == nil {
			t.Fatal("vault.configure.enabled but no Job")
		}
		pm := find[*monitoringv1.PodMonitor](ms, "hub-broker-sidecars")
		worker := find[*appsv1.Deployment](ms, "hub-broker-recipe-worker")
		if pm == nil || !subset(pm.Spec.Selector.MatchLabels, worker.Spec.Template.Labels) {
			t.Errorf("no PodMonitor selecting the sidecar pods: %v", pm)
		} else if _, ok := namedPort(&worker.Spec.Template.Spec, ptrOr(pm.Spec.PodMetricsEndpoints[0].Port)); !ok {
			t.Errorf("the PodMonitor scrapes port %q, which the sidecar pod lacks", ptrOr(pm.Spec.PodMetricsEndpoints[0].Port))
		}
	})

	t.Run("broker/sidecar-tls", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "broker", valuesFile: "ci/sidecar-tls-values.yaml"})
		d := find[*appsv1.Deployment](ms, "hub-broker-recipe-worker")
		checkSidecarPod(t, d, true)
		c := deploymentContainer(t, d, "broker")
		if v, _ := env(c, "BROKER_CONNECTIONS_CA_FILE"); v == "" {
			t.Error("a sidecar with TLS on has no CA for the connection service (BROKER_CONNECTIONS_CA_FILE)")
		}
		for _, e := range []string{"BROKER_TLS_CERT_FILE", "BROKER_TLS_KEY_FILE"} {
			if _, ok := env(c, e); ok {
				t.Errorf("the sidecar serves unix sockets and has no certificate of its own, yet %s is set", e)
			}
		}
		found := false
		for _, v := range d.Spec.Template.Spec.Volumes {
			found = found || v.Secret != nil && v.Secret.SecretName == "hub-connections-ca"
		}
		if !found {
			t.Error("the CA Secret connectionService.caSecret is not mounted")
		}
	})

	t.Run("broker/sidecar-classic", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "broker", valuesFile: "ci/sidecar-classic-values.yaml"})
		checkSidecarPod(t, find[*appsv1.Deployment](ms, "hub-broker-recipe-worker"), false)
	})

	t.Run("broker/tls", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "broker", valuesFile: "ci/tls-values.yaml"})
		d := find[*appsv1.Deployment](ms, "hub-broker")
		c := deploymentContainer(t, d, "broker")
		if v, _ := env(c, "BROKER_ADMIN_CLIENT_NAMES"); v != "hub-connections" {
			t.Errorf("BROKER_ADMIN_CLIENT_NAMES = %q, want the pinned connection service name", v)
		}
		for _, e := range []string{"BROKER_TLS_CERT_FILE", "BROKER_TLS_KEY_FILE", "BROKER_TLS_CA_FILE", "BROKER_HEALTH_LISTEN", "VAULT_CACERT"} {
			if _, ok := env(c, e); !ok {
				t.Errorf("TLS on but no %s", e)
			}
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
			t.Errorf("autoscaling off: want 3 replicas, got %v", d.Spec.Replicas)
		}
	})

	t.Run("integrationhub/tls", func(t *testing.T) {
		ms, _ := renderScenario(t, scenario{chart: "integrationhub", valuesFile: "ci/tls-values.yaml"})
		for name, c := range map[string]string{"hub-connections": "connections", "hub-broker": "broker"} {
			ctr := deploymentContainer(t, find[*appsv1.Deployment](ms, name), c)
			found := false
			for _, e := range ctr.Env {
				found = found || strings.HasSuffix(e.Name, "_TLS_CERT_FILE")
			}
			if !found {
				t.Errorf("%s: TLS on in the umbrella but not in the container", name)
			}
		}
	})
}

func dsnRef(t *testing.T, c corev1.Container) *corev1.SecretKeySelector {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == "CONNECTIONS_DATABASE" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	t.Fatalf("container %s: CONNECTIONS_DATABASE not from a Secret", c.Name)
	return nil
}

func hasServicePort(s *corev1.Service, name string, port int32) bool {
	for _, p := range s.Spec.Ports {
		if p.Name == name && p.Port == port {
			return true
		}
	}
	return false
}

// policyRules parses a rendered Vault policy into path -> capabilities, in order.
func policyRules(t *testing.T, hcl string) (paths []string, caps map[string][]string) {
	t.Helper()
	caps = map[string][]string{}
	var cur string
	for _, line := range strings.Split(hcl, "\n") {
		line = strings.TrimSpace(line)
		if p, ok := strings.CutPrefix(line, "path \""); ok {
			cur = strings.TrimSuffix(p, "\" {")
			paths = append(paths, cur)
			continue
		}
		if c, ok := strings.CutPrefix(line, "capabilities = "); ok && cur != "" {
			var list []string
			for _, f := range strings.Split(strings.Trim(c, "[]"), ",") {
				list = append(list, strings.Trim(strings.TrimSpace(f), `"`))
			}
			caps[cur] = list
		}
	}
	return paths, caps
}

// checkPolicy: a rendered Vault policy grants exactly what the broker uses (internal/vault:
// connection entries and their metadata, OAuth client registrations, the job-token transit key,
// its own token), and nothing else.
func checkPolicy(t *testing.T, hcl string, want map[string][]string) {
	t.Helper()
	paths, caps := policyRules(t, hcl)
	if len(paths) != len(want) {
		t.Errorf("policy paths\n got %q\nwant %v", paths, want)
	}
	for p, w := range want {
		if !slices.Equal(caps[p], w) {
			t.Errorf("policy path %s: capabilities %q, want %q", p, caps[p], w)
		}
	}
	if strings.Contains(hcl, `"sudo"`) {
		t.Error("policy grants sudo")
	}
}

// sharedPolicy and sidecarPolicy are what the broker needs with the default values.
var (
	tokenSelf = map[string][]string{
		"auth/token/lookup-self": {"read"}, "auth/token/renew-self": {"update"}, "auth/token/revoke-self": {"update"},
	}
	sharedPolicy = merged(tokenSelf, map[string][]string{
		"secret/data/integrationhub/connections/*":       {"create", "read", "update"},
		"secret/metadata/integrationhub/connections/*":   {"read", "list", "delete"},
		"secret/data/integrationhub/oauth-clients/*":     {"create", "read", "update"},
		"secret/metadata/integrationhub/oauth-clients/*": {"read", "list", "delete"},
		"secret/data/integrationhub/webhooks/*":          {"create", "read", "update"},
		"secret/metadata/integrationhub/webhooks/*":      {"read", "list", "delete"},
		"transit/sign/integrationhub-job-token":          {"update"},
		"transit/keys/integrationhub-job-token":          {"read"},
	})
	sidecarPolicy = merged(tokenSelf, map[string][]string{
		"secret/data/integrationhub/connections/*":   {"create", "read", "update"},
		"secret/data/integrationhub/oauth-clients/*": {"read"},
		"transit/keys/integrationhub-job-token":      {"read"},
	})
)

func merged(a, b map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// checkSidecarPod: the broker runs beside the worker, the worker reaches it on a unix socket in
// a shared emptyDir, and cannot reach the admin socket.
func checkSidecarPod(t *testing.T, d *appsv1.Deployment, native bool) {
	t.Helper()
	if d == nil {
		t.Fatal("no example recipe-worker Deployment")
	}
	spec := &d.Spec.Template.Spec
	var broker, worker *corev1.Container
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == "broker" {
			broker = &spec.InitContainers[i]
		}
	}
	for i := range spec.Containers {
		switch spec.Containers[i].Name {
		case "broker":
			broker = &spec.Containers[i]
		case "worker":
			worker = &spec.Containers[i]
		}
	}
	if broker == nil || worker == nil {
		t.Fatalf("want a broker and a worker container, got init %d, containers %d", len(spec.InitContainers), len(spec.Containers))
	}
	isNative := broker.RestartPolicy != nil && *broker.RestartPolicy == corev1.ContainerRestartPolicyAlways && len(spec.InitContainers) > 0
	if isNative != native {
		t.Errorf("native sidecar = %v, want %v", isNative, native)
	}
	listen, _ := env(*broker, "BROKER_LISTEN")
	sock, ok := strings.CutPrefix(listen, "unix:")
	if !ok {
		t.Fatalf("BROKER_LISTEN = %q, want a unix socket", listen)
	}
	admin, _ := env(*broker, "BROKER_ADMIN_LISTEN")
	adminSock, ok := strings.CutPrefix(admin, "unix:")
	if !ok {
		t.Fatalf("BROKER_ADMIN_LISTEN = %q, want a unix socket (a TCP port would be reachable from the worker)", admin)
	}
	volumeAt := func(c *corev1.Container, file string) string {
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") {
				return m.Name
			}
		}
		return ""
	}
	shared := volumeAt(broker, sock)
	if shared == "" || volumeAt(worker, sock) != shared {
		t.Errorf("the worker and the broker must mount the socket's volume (%q) at the same path", shared)
	}
	for _, v := range spec.Volumes {
		if v.Name == shared && v.EmptyDir == nil {
			t.Errorf("the socket volume %s is not an emptyDir", v.Name)
		}
	}
	if av := volumeAt(broker, adminSock); av == "" || av == shared || volumeAt(worker, adminSock) != "" {
		t.Errorf("the admin socket must sit on a volume only the broker mounts (broker %q, worker %q)", av, volumeAt(worker, adminSock))
	}
	addr, _ := env(*worker, "INTEGRATIONHUB_BROKER_ADDR")
	if addr != "unix://"+sock {
		t.Errorf("worker INTEGRATIONHUB_BROKER_ADDR = %q, want unix://%s", addr, sock)
	}
	if role, _ := env(*broker, "BROKER_VAULT_K8S_ROLE"); role != "hub-broker-sidecar" {
		t.Errorf("sidecar Vault role %q, want hub-broker-sidecar", role)
	}
}

// Every alert the charts ship is explained in the operator guide.
func TestAlertsDocumented(t *testing.T) {
	guide, err := os.ReadFile(filepath.Join("..", "docs", "operator-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := renderScenario(t, scenario{chart: "integrationhub", valuesFile: "ci/tls-values.yaml"})
	rules := objects[*monitoringv1.PrometheusRule](ms)
	if len(rules) != 2 {
		t.Fatalf("want a PrometheusRule per service, got %d", len(rules))
	}
	for _, r := range rules {
		for _, g := range r.Spec.Groups {
			for _, rule := range g.Rules {
				if rule.Alert != "" && !strings.Contains(string(guide), "`"+rule.Alert+"`") {
					t.Errorf("alert %s is not explained in docs/operator-guide.md", rule.Alert)
				}
			}
		}
	}
}
