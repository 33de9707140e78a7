package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/integrationhub/connections/internal/devstack"
)

// object is one rendered Kubernetes object: its kind, name and the parts the
// tests read; Raw keeps the whole document for everything else.
type object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Raw        map[string]any    `yaml:"-"`
}

var (
	depsMu    sync.Mutex
	depsBuilt = map[string]bool{}
	helmOnce  sync.Once
	helmBin   string
	helmErr   error
)

// helm returns the pinned helm (tools/go.mod), built once.
func helm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		out, err := exec.Command("go", "tool", "-n", "helm").Output()
		helmBin, helmErr = strings.TrimSpace(string(out)), err
	})
	if helmErr != nil {
		t.Fatalf("go tool -n helm: %v", helmErr)
	}
	return helmBin
}

// helmTemplate renders a chart of charts/ as `helm template hub charts/<chart>
// --namespace integrationhub` does, with the given values files (YAML text),
// and returns every object, hooks included.
func helmTemplate(t *testing.T, chart string, values ...string) []object {
	t.Helper()
	root, err := devstack.Root()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "charts", chart)
	if _, err := os.Stat(filepath.Join(dir, "Chart.lock")); err == nil {
		// The umbrella chart: package its subcharts from their sources (charts/lint.sh does the same).
		depsMu.Lock()
		if !depsBuilt[dir] {
			if out, err := exec.Command(helm(t), "dependency", "build", dir).CombinedOutput(); err != nil {
				depsMu.Unlock()
				t.Fatalf("helm dependency build %s: %v\n%s", dir, err, out)
			}
			depsBuilt[dir] = true
		}
		depsMu.Unlock()
	}
	args := []string{"template", "hub", dir, "--namespace", "integrationhub", "--kube-version", "1.33.0"}
	for i, v := range values {
		f := filepath.Join(t.TempDir(), "values-"+string(rune('a'+i))+".yaml")
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--values", f)
	}
	cmd := exec.Command(helm(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var objs []object
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var raw map[string]any
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("helm template output: %v", err)
		}
		if raw == nil {
			continue
		}
		b, _ := yaml.Marshal(raw)
		var o object
		if err := yaml.Unmarshal(b, &o); err != nil {
			t.Fatal(err)
		}
		o.Raw = raw
		objs = append(objs, o)
	}
	return objs
}

// findObject returns the rendered object of kind and name, or fails.
func findObject(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Metadata.Name == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return object{}
}

// vaultRoot calls the stack's Vault with its root token, as the Vault
// operator applying the chart's files does, and fails unless it succeeds.
func vaultRoot(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(t.Context(), method, stack.Vault.Addr+"/v1/"+path, bytes.NewReader(b))
	req.Header.Set("X-Vault-Token", stack.Vault.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("vault %s %s: %s: %s", method, path, resp.Status, rb)
	}
	var out map[string]any
	_ = json.Unmarshal(rb, &out)
	return out
}

// policyToken writes a Vault policy and returns a periodic token bound to it
// alone (no default policy), as the chart's Vault roles issue.
func policyToken(t *testing.T, name, hcl string) string {
	t.Helper()
	vaultRoot(t, http.MethodPut, "sys/policies/acl/"+name, map[string]any{"policy": hcl})
	out := vaultRoot(t, http.MethodPost, "auth/token/create-orphan", map[string]any{
		"policies": []string{name}, "no_default_policy": true, "period": "1h", "display_name": name})
	auth, _ := out["auth"].(map[string]any)
	tok, _ := auth["client_token"].(string)
	if tok == "" {
		t.Fatalf("no token created for policy %s", name)
	}
	return tok
}
