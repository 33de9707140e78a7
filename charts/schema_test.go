package charts

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Wrong values fail the install before anything renders, with a message naming the value.
func TestValuesRejected(t *testing.T) {
	schemaErr := "values don't meet the specifications of the schema(s)"
	tests := []struct {
		name   string
		chart  string
		values string
		want   []string // substrings of the error, in any order
	}{
		{
			name:   "wrong type: replicas as a string",
			chart:  "connections",
			values: `replicas: three`,
			want:   []string{schemaErr, "connections:", "at '/replicas'", "want integer"},
		},
		{
			name:   "missing required value: no DSN and no existing Secret",
			chart:  "connections",
			values: "database:\n  dsn: \"\"\n  existingSecret: \"\"",
			want:   []string{schemaErr, "at '/database/dsn'", "minLength"},
		},
		{
			name:   "not a PostgreSQL DSN",
			chart:  "connections",
			values: "database:\n  dsn: sqlite:connections.db",
			want:   []string{schemaErr, "at '/database/dsn'", "does not match pattern"},
		},
		{
			name:   "missing required value: no JWKS URL and no key set",
			chart:  "connections",
			values: "auth:\n  jwksURL: \"\"",
			want:   []string{schemaErr, "at '/auth/jwks'", "minLength"},
		},
		{
			name:   "wrong type: a duration as a number",
			chart:  "connections",
			values: "watchPoll: 5",
			want:   []string{schemaErr, "at '/watchPoll'", "want string"},
		},
		{
			name:   "missing required value: Vault address removed",
			chart:  "broker",
			values: "vault:\n  address: null",
			want:   []string{schemaErr, "broker:", "at '/vault'", "missing property 'address'"},
		},
		{
			name:   "missing required value: token auth without its Secret",
			chart:  "broker",
			values: "vault:\n  authMethod: token",
			want:   []string{schemaErr, "at '/vault/token/existingSecret'", "minLength"},
		},
		{
			name:   "unknown auth method",
			chart:  "broker",
			values: "vault:\n  authMethod: userpass",
			want:   []string{schemaErr, "at '/vault/authMethod'", "'token', 'kubernetes', 'approle'"},
		},
		{
			name:   "misspelt key",
			chart:  "broker",
			values: "vault:\n  adress: https://vault:8200",
			want:   []string{schemaErr, "additional properties 'adress' not allowed"},
		},
		{
			name:   "missing required value: TLS without its Secret",
			chart:  "broker",
			values: "tls:\n  enabled: true",
			want:   []string{schemaErr, "at '/tls/secretName'", "minLength"},
		},
		{
			name:   "wrong type: port as a string",
			chart:  "broker",
			values: "ports:\n  grpc: \"7002\"",
			want:   []string{schemaErr, "at '/ports/grpc'", "want integer"},
		},
		{
			name:   "an empty client list would open the admin API to everyone",
			chart:  "broker",
			values: "networkPolicy:\n  adminClients: []",
			want:   []string{schemaErr, "at '/networkPolicy/adminClients'", "minItems"},
		},
		{
			name:   "no memory limit",
			chart:  "broker",
			values: "shared:\n  resources:\n    limits:\n      memory: null",
			want:   []string{schemaErr, "at '/shared/resources/limits'", "missing property 'memory'"},
		},
		{
			name:   "umbrella: a subchart's wrong type is reported under its name",
			chart:  "integrationhub",
			values: "connections:\n  replicas: \"3\"",
			want:   []string{schemaErr, "connections:", "at '/replicas'", "want integer"},
		},
		{
			name:   "umbrella: unknown top-level key",
			chart:  "integrationhub",
			values: "conections:\n  replicas: 3",
			want:   []string{schemaErr, "additional properties 'conections' not allowed"},
		},
		{
			name:   "umbrella: TLS on one side only",
			chart:  "integrationhub",
			values: "broker:\n  tls:\n    enabled: true\n    secretName: broker-tls",
			want:   []string{"set connections.tls.enabled and broker.tls.enabled to the same value"},
		},
		{
			name:   "umbrella: no shared broker and no admin address",
			chart:  "integrationhub",
			values: "broker:\n  shared:\n    enabled: false",
			want:   []string{"set connections.broker.adminAddress"},
		},
		{
			name:   "two listeners on one port",
			chart:  "connections",
			values: "ports:\n  http: 7001",
			want:   []string{"must all differ"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := render(t, loadChart(t, tt.chart), valuesFromYAML(t, tt.values))
			if err == nil {
				t.Fatalf("values accepted:\n%s", tt.values)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// The values that fix each rejection above are accepted: the schema is not merely strict.
func TestValuesAccepted(t *testing.T) {
	tests := []struct{ chart, values string }{
		{"connections", "database:\n  dsn: \"\"\n  existingSecret: pg"},
		{"connections", "database:\n  dsn: postgresql://u:p@db:5432/c?sslmode=verify-full"},
		{"connections", "podDisruptionBudget:\n  maxUnavailable: 50%"},
		{"broker", "vault:\n  authMethod: token\n  token:\n    existingSecret: vt"},
		{"broker", "tls:\n  enabled: true\n  secretName: t"},
		{"broker", "shared:\n  resources:\n    limits:\n      cpu: null"},
		{"integrationhub", "broker:\n  shared:\n    enabled: false\nconnections:\n  broker:\n    adminAddress: broker.shared.svc:7003"},
	}
	for _, tt := range tests {
		if _, _, err := render(t, loadChart(t, tt.chart), valuesFromYAML(t, tt.values)); err != nil {
			t.Errorf("%s with\n%s\nrejected: %v", tt.chart, tt.values, err)
		}
	}
}

// The network policy check fails when the admin API is opened up: it is not vacuous.
func TestNetworkPolicyCheckCatchesOpenAdminAPI(t *testing.T) {
	ms, _, err := render(t, loadChart(t, "broker"), valuesFromYAML(t, "networkPolicy:\n  adminClients:\n    - namespaceSelector: {}"))
	if err != nil {
		t.Fatal(err)
	}
	if ms, err = decodeAll(ms); err != nil {
		t.Fatal(err)
	}
	d := find[*appsv1.Deployment](ms, "hub-broker")
	port, _ := namedPort(&d.Spec.Template.Spec, "admin")
	worker := source{"recipe worker", "workers", map[string]string{"integrationhub.io/broker-client": "true"}}
	if _, allowed := admits(objects[*networkingv1.NetworkPolicy](ms), namespace, d.Spec.Template.Labels, &d.Spec.Template.Spec, port, worker); !allowed {
		t.Error("admin API opened to every namespace, yet the evaluator says a worker cannot reach it")
	}
}

// Strict decoding rejects what the API server would reject: a field that does not exist.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	ms := []manifest{{source: "bad.yaml", yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\ndatas:\n  c: d\n"}}
	if _, err := decodeAll(ms); err == nil || !strings.Contains(err.Error(), `unknown field "datas"`) {
		t.Errorf("want an unknown-field error, got %v", err)
	}
	ms = []manifest{{source: "bad.yaml", yaml: "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: x\n"}}
	if _, err := decodeAll(ms); err == nil {
		t.Error("a kind outside the scheme was accepted")
	}
}

// A recipe-worker chart that lists the broker chart as a dependency adds the sidecar with the
// named templates, passing .Subcharts.broker, as the operator guide shows.
func TestSidecarFromParentChart(t *testing.T) {
	parent := &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "recipe-worker", Version: "1.0.0", AppVersion: "1.0.0"},
		Values:   map[string]any{"broker": map[string]any{"shared": map[string]any{"enabled": false}}},
		Templates: []*chart.File{{Name: "templates/deployment.yaml", Data: []byte(`
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-recipe-worker
spec:
  selector:
    matchLabels: {app: recipe-worker}
  template:
    metadata:
      labels: {app: recipe-worker}
    spec:
      serviceAccountName: recipe-worker
      automountServiceAccountToken: false
      initContainers:
        {{- include "broker.sidecar.container" .Subcharts.broker | nindent 8 }}
      containers:
        - name: worker
          image: example/worker:1
          env:
            {{- include "broker.sidecar.workerEnv" .Subcharts.broker | nindent 12 }}
          volumeMounts:
            {{- include "broker.sidecar.workerVolumeMount" .Subcharts.broker | nindent 12 }}
      volumes:
        {{- include "broker.sidecar.volumes" .Subcharts.broker | nindent 8 }}
`)}},
	}
	parent.SetDependencies(loadChart(t, "broker"))
	ms, _, err := render(t, parent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ms, err = decodeAll(ms); err != nil {
		t.Fatal(err)
	}
	d := find[*appsv1.Deployment](ms, "hub-recipe-worker")
	checkSidecarPod(t, d, true)
	for _, c := range d.Spec.Template.Spec.InitContainers {
		if c.Image != "ghcr.io/integrationhub/broker:0.1.0" {
			t.Errorf("sidecar image %q: the broker chart's own image and appVersion must be used", c.Image)
		}
	}
}
