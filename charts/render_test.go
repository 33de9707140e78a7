package charts

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"
)

const (
	releaseName = "hub"
	namespace   = "integrationhub"
)

// charts are the chart directories, relative to this package.
var charts = []string{"connections", "broker", "integrationhub"}

// scheme knows every API type the charts may render; a kind outside it fails the tests, so a new
// kind has to be added here (and so gets decoded strictly too).
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, networkingv1.AddToScheme,
		policyv1.AddToScheme, autoscalingv2.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strictDecoder rejects unknown and duplicate fields, as `kubectl apply --validate=strict` does.
var strictDecoder = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
	json.SerializerOptions{Yaml: true, Strict: true})

// loadChart loads a chart directory. The umbrella chart gets its subcharts from their source
// directories, not from charts/*.tgz, so that the tests always see the current sources.
func loadChart(t testing.TB, dir string) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	if len(ch.Metadata.Dependencies) > 0 {
		var deps []*chart.Chart
		for _, d := range ch.Metadata.Dependencies {
			src, ok := strings.CutPrefix(d.Repository, "file://")
			if !ok {
				t.Fatalf("%s: dependency %s is not a file:// chart", dir, d.Name)
			}
			deps = append(deps, loadChart(t, filepath.Join(dir, src)))
		}
		ch.SetDependencies(deps...)
	}
	return ch
}

// render installs the chart client-side (what `helm install --dry-run` does without a cluster):
// values are checked against the schemas, the templates rendered, hooks separated.
func render(t testing.TB, ch *chart.Chart, vals map[string]any) (manifests []manifest, notes string, err error) {
	t.Helper()
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.ClientOnly = true
	install.DryRun = true
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.33.0", Major: "1", Minor: "33"}
	rel, err := install.Run(ch, vals)
	if err != nil {
		return nil, "", err
	}
	for name, doc := range releaseutil.SplitManifests(rel.Manifest) {
		// Each document starts with "# Source: <chart>/templates/<file>".
		if first, _, _ := strings.Cut(doc, "\n"); strings.HasPrefix(first, "# Source: ") {
			name = strings.TrimPrefix(first, "# Source: ")
		}
		manifests = append(manifests, manifest{source: name, yaml: doc})
	}
	for _, h := range rel.Hooks {
		var events []string
		for _, e := range h.Events {
			events = append(events, e.String())
		}
		manifests = append(manifests, manifest{source: h.Path, yaml: h.Manifest, hook: strings.Join(events, ",")})
	}
	sort.Slice(manifests, func(i, j int) bool { return manifests[i].source < manifests[j].source })
	return manifests, rel.Info.Notes, nil
}

type manifest struct {
	source string // template path, or the hook's path
	yaml   string
	hook   string // the hook events, empty for a release resource
	obj    runtime.Object
}

// decodeAll decodes every manifest strictly into its API type.
func decodeAll(ms []manifest) ([]manifest, error) {
	var errs []error
	for i := range ms {
		obj, gvk, err := strictDecoder.Decode([]byte(ms[i].yaml), nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ms[i].source, err))
			continue
		}
		if gvk.Kind == "" {
			errs = append(errs, fmt.Errorf("%s: no kind", ms[i].source))
			continue
		}
		ms[i].obj = obj
	}
	return ms, errors.Join(errs...)
}

// scenario is one chart rendered with one values file (or none: the defaults).
type scenario struct {
	chart      string
	valuesFile string // relative to the chart, empty for the defaults
}

func (s scenario) String() string {
	if s.valuesFile == "" {
		return s.chart + "/defaults"
	}
	return s.chart + "/" + strings.TrimSuffix(filepath.Base(s.valuesFile), "-values.yaml")
}

func allScenarios(t testing.TB) []scenario {
	t.Helper()
	var out []scenario
	for _, c := range charts {
		out = append(out, scenario{chart: c})
		files, err := filepath.Glob(filepath.Join(c, "ci", "*-values.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("chart %s has no ci/*-values.yaml scenarios", c)
		}
		for _, f := range files {
			rel, _ := filepath.Rel(c, f)
			out = append(out, scenario{chart: c, valuesFile: rel})
		}
	}
	return out
}

func readValues(t testing.TB, path string) map[string]any {
	t.Helper()
	if path == "" {
		return map[string]any{}
	}
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return v.AsMap()
}

// valuesFromYAML parses inline YAML values, as a values file would be.
func valuesFromYAML(t testing.TB, doc string) map[string]any {
	t.Helper()
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("values %q: %v", doc, err)
	}
	return v
}

// renderScenario renders and strictly decodes one scenario.
func renderScenario(t testing.TB, s scenario) ([]manifest, string) {
	t.Helper()
	var vals map[string]any
	if s.valuesFile != "" {
		vals = readValues(t, filepath.Join(s.chart, s.valuesFile))
	}
	ms, notes, err := render(t, loadChart(t, s.chart), vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	ms, err = decodeAll(ms)
	if err != nil {
		t.Fatalf("strict decoding:\n%v", err)
	}
	return ms, notes
}

func objects[T runtime.Object](ms []manifest) []T {
	var out []T
	for _, m := range ms {
		if o, ok := m.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}
