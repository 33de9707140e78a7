package charts

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// guideValues returns the values of the operator guide's install section (the my-values.yaml
// block), with its "sha256:..." digests filled in as a reader would.
func guideValues(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "operator-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "**Values** (`my-values.yaml`):")
	if !ok {
		t.Fatal("the guide has no my-values.yaml step")
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(rest)
	if m == nil {
		t.Fatal("no yaml block after the my-values.yaml step")
	}
	var lines []string
	for _, l := range strings.Split(m[1], "\n") {
		lines = append(lines, strings.TrimPrefix(l, "   "))
	}
	doc := strings.ReplaceAll(strings.Join(lines, "\n"), "sha256:...", "sha256:"+strings.Repeat("ab", 32))
	return valuesFromYAML(t, doc)
}

// Strict mode refuses an install while placeholders remain, naming each; the operator guide's
// install values (strict on) render, follow the connection service and set a redirect URL.
func TestStrictMode(t *testing.T) {
	cases := []struct {
		name, chart string
		values      string
		want        []string // substrings of the error; none: renders
	}{
		{"connections defaults", "connections", "strict: true", []string{"database.dsn names no password", "auth.issuer", "no OAuth redirect URL"}},
		{"connections example ingress host", "connections",
			"strict: true\ndatabase: {existingSecret: db}\nauth: {issuer: https://id.acme.test, jwksURL: https://id.acme.test/jwks}\ningress: {enabled: true}",
			[]string{"redirect URL https://connections.integrationhub.example/oauth2/callback is a placeholder"}},
		{"connections complete", "connections",
			"strict: true\ndatabase: {dsn: 'postgres://c:pw@db:5432/c'}\nauth: {issuer: https://id.acme.test, jwksURL: https://id.acme.test/jwks}\noauth: {redirectURL: https://hub.acme.test/oauth2/callback}",
			nil},
		{"broker without connection service", "broker", "strict: true", []string{"connectionService.address is empty"}},
		{"broker defaults, strict off", "broker", "", nil},
		{"broker on the default service account", "broker", "serviceAccount: {create: false}", []string{"set serviceAccount.name"}},
		{"umbrella global.strict", "integrationhub", "global: {strict: true}", []string{"database.dsn names no password"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := render(t, loadChart(t, c.chart), valuesFromYAML(t, c.values))
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("render: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("strict mode installed with placeholders")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	t.Run("umbrella broker without connection service", func(t *testing.T) {
		vals := guideValues(t)
		delete(vals["broker"].(map[string]any), "connectionService")
		if _, _, err := render(t, loadChart(t, "integrationhub"), vals); err == nil || !strings.Contains(err.Error(), "connectionService.address is empty") {
			t.Errorf("got %v, want the missing connection service refused", err)
		}
	})

	t.Run("the operator guide's values", func(t *testing.T) {
		vals := guideValues(t)
		if g, _ := vals["global"].(map[string]any); g["strict"] != true {
			t.Error("the guide's install values do not turn strict mode on")
		}
		ms, _, err := render(t, loadChart(t, "integrationhub"), vals)
		if err != nil {
			t.Fatalf("the guide's values do not install: %v", err)
		}
		ms, err = decodeAll(ms)
		if err != nil {
			t.Fatal(err)
		}
		b := deploymentContainer(t, find[*appsv1.Deployment](ms, "hub-broker"), "broker")
		if v, _ := env(b, "BROKER_CONNECTIONS_ADDR"); v == "" {
			t.Error("the guide's broker does not follow the connection service")
		}
		c := deploymentContainer(t, find[*appsv1.Deployment](ms, "hub-connections"), "connections")
		if v, _ := env(c, "CONNECTIONS_OAUTH_REDIRECT_URL"); !strings.HasPrefix(v, "https://") {
			t.Errorf("the guide's redirect URL %q", v)
		}
	})
}

// The connection service finds the broker's admin API on the broker's configured port; the
// umbrella refuses ports that disagree.
func TestBrokerAdminPort(t *testing.T) {
	ms, _, err := render(t, loadChart(t, "integrationhub"), valuesFromYAML(t, "connections: {broker: {adminPort: 7103}}\nbroker: {ports: {admin: 7103}}"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err = decodeAll(ms)
	if err != nil {
		t.Fatal(err)
	}
	c := deploymentContainer(t, find[*appsv1.Deployment](ms, "hub-connections"), "connections")
	if v, _ := env(c, "CONNECTIONS_BROKER_ADMIN_ADDR"); v != "hub-broker:7103" {
		t.Errorf("CONNECTIONS_BROKER_ADMIN_ADDR = %q, want hub-broker:7103", v)
	}
	if _, _, err := render(t, loadChart(t, "integrationhub"), valuesFromYAML(t, "broker: {ports: {admin: 7103}}")); err == nil || !strings.Contains(err.Error(), "adminPort") {
		t.Errorf("disagreeing admin ports: %v, want a refusal", err)
	}
}

// Hook, test and example images can be pinned by digest like the services' own.
func TestFixedImageDigests(t *testing.T) {
	digest := "sha256:" + strings.Repeat("cd", 32)
	vals := valuesFromYAML(t, "tests: {image: {digest: "+digest+"}}\nsidecarExample: {enabled: true, image: {digest: "+digest+"}}\nvault: {configure: {enabled: true, tokenSecret: {name: x}, image: {digest: "+digest+"}}}")
	ms, _, err := render(t, loadChart(t, "broker"), vals)
	if err != nil {
		t.Fatal(err)
	}
	ms, err = decodeAll(ms)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range podsOf(ms) {
		for _, c := range allContainers(p.spec) {
			if !ours(c) && !strings.HasSuffix(c.Image, "@"+digest) {
				t.Errorf("%s container %s: image %s, want the digest", p, c.Name, c.Image)
			}
		}
	}
}
