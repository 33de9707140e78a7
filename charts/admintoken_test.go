package charts

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// secretKeyRef returns the Secret and key an environment variable is read from, or "" when the
// container does not read it from a Secret.
func secretKeyRef(c corev1.Container, name string) (secret, key string) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key
		}
	}
	return "", ""
}

// The umbrella chart gives the connection service and the shared broker one admin API token, as
// shipped: a generated Secret by default, or the operator's; sidecars' admin API stays closed;
// with TLS the pinned certificate names reach the broker once.
func TestAdminToken(t *testing.T) {
	for _, tc := range []struct {
		name, values        string
		wantSecret, wantKey string
		generated           bool
		wantNames           string
	}{
		{name: "defaults", wantSecret: "hub-admin-token", wantKey: "token", generated: true},
		{name: "existing Secret", values: "global: {adminToken: {existingSecret: hub-admin, key: svc}}", wantSecret: "hub-admin", wantKey: "svc"},
		{name: "TLS, names pinned twice", values: `connections: {tls: {enabled: true, secretName: c-tls}}
broker:
  tls: {enabled: true, secretName: b-tls, adminClientNames: [hub-connections]}
  adminAuth: {clientNames: [hub-connections, hub-connections-2]}
  sidecarExample: {enabled: true}`, wantSecret: "hub-admin-token", wantKey: "token", generated: true, wantNames: "hub-connections,hub-connections-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, notes, err := render(t, loadChart(t, "integrationhub"), valuesFromYAML(t, tc.values))
			if err != nil {
				t.Fatal(err)
			}
			if ms, err = decodeAll(ms); err != nil {
				t.Fatal(err)
			}
			conn := deploymentContainer(t, find[*appsv1.Deployment](ms, "hub-connections"), "connections")
			broker := deploymentContainer(t, find[*appsv1.Deployment](ms, "hub-broker"), "broker")
			cs, ck := secretKeyRef(conn, "CONNECTIONS_BROKER_ADMIN_TOKEN")
			bs, bk := secretKeyRef(broker, "BROKER_ADMIN_TOKEN")
			if cs != tc.wantSecret || ck != tc.wantKey || bs != tc.wantSecret || bk != tc.wantKey {
				t.Errorf("admin token: connection service %s/%s, broker %s/%s; want both %s/%s", cs, ck, bs, bk, tc.wantSecret, tc.wantKey)
			}
			s := find[*corev1.Secret](ms, "hub-admin-token")
			switch {
			case tc.generated && s == nil:
				t.Error("no generated admin token Secret")
			case tc.generated && len(s.Data[tc.wantKey]) < 32:
				t.Errorf("generated admin token: %d bytes under %q, want 32 or more", len(s.Data[tc.wantKey]), tc.wantKey)
			case !tc.generated && s != nil:
				t.Error("a token Secret generated beside the operator's")
			}
			if !strings.Contains(notes, tc.wantSecret) {
				t.Errorf("NOTES do not name the token's Secret %s:\n%s", tc.wantSecret, notes)
			}
			var names []string
			for _, e := range broker.Env {
				if e.Name == "BROKER_ADMIN_CLIENT_NAMES" {
					names = append(names, e.Value)
				}
			}
			if want := []string{tc.wantNames}; tc.wantNames == "" && len(names) != 0 || tc.wantNames != "" && strings.Join(names, "|") != strings.Join(want, "|") {
				t.Errorf("BROKER_ADMIN_CLIENT_NAMES = %q, want %q once", names, tc.wantNames)
			}
			if w := find[*appsv1.Deployment](ms, "hub-broker-recipe-worker"); w != nil {
				for _, c := range allContainers(&w.Spec.Template.Spec) {
					if _, ok := env(c, "BROKER_ADMIN_TOKEN"); ok {
						t.Errorf("sidecar container %s gets the admin token: its admin API serves nobody", c.Name)
					}
				}
			}
		})
	}
}

// The umbrella refuses values that would lock the connection service out of the admin API.
func TestAdminTokenRefusals(t *testing.T) {
	for _, tc := range []struct{ name, values, want string }{
		{"two different Secrets", "broker: {adminAuth: {tokenSecret: other}}", "the admin API's token differs"},
		{"two different keys", "connections: {broker: {adminTokenKey: other}}", "the admin API's token differs"},
		{"no token and no pinned name", "broker: {adminAuth: {tokenSecret: \"\"}}", "would refuse the connection service"},
		{"no token, TLS without names", "connections: {tls: {enabled: true, secretName: c}}\nbroker: {tls: {enabled: true, secretName: b}, adminAuth: {tokenSecret: \"\"}}", "would refuse the connection service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := render(t, loadChart(t, "integrationhub"), valuesFromYAML(t, tc.values)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// TLS names alone are enough.
	if _, _, err := render(t, loadChart(t, "integrationhub"), valuesFromYAML(t,
		"connections: {tls: {enabled: true, secretName: c}, broker: {adminTokenSecret: \"\"}}\nbroker: {tls: {enabled: true, secretName: b, adminClientNames: [hub-connections]}, adminAuth: {tokenSecret: \"\"}}")); err != nil {
		t.Errorf("TLS-pinned names without a token: %v", err)
	}
}
