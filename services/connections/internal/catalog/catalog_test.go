package catalog_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

	"github.com/integrationhub/connections/services/connections/internal/catalog"
)

func TestEmbedded(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	zd, ok := cat.Get("zendesk")
	if !ok || !zd.Supports(credentialv1.AuthType_AUTH_TYPE_BASIC) || zd.OAuth2 == nil {
		t.Fatalf("zendesk = %+v, want basic and OAuth 2.0", zd)
	}
	if tr, _ := cat.Get("trello"); !tr.Supports(credentialv1.AuthType_AUTH_TYPE_OAUTH1) {
		t.Error("trello does not offer OAuth 1.0a")
	}
	if _, ok := cat.Get("nosuchapp"); ok {
		t.Error("Get found an app that is not in the catalog")
	}
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// An operator file adds apps and replaces built-in ones by name, e.g. to point
// an app at another host.
func TestOverride(t *testing.T) {
	cat, err := catalog.Load(write(t, `
connectors:
  - name: stripe
    display_name: Stripe (proxy)
    auth_types: [api_key]
    default_base_url: http://127.0.0.1:9999
  - name: acme_erp
    display_name: ACME ERP
    auth_types: [basic]
`))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := cat.Get("stripe"); s.DefaultBaseURL != "http://127.0.0.1:9999" {
		t.Errorf("stripe base URL = %q, want the override", s.DefaultBaseURL)
	}
	if _, ok := cat.Get("acme_erp"); !ok {
		t.Error("added app missing")
	}
	if _, ok := cat.Get("zendesk"); !ok {
		t.Error("an override dropped the built-in apps")
	}
}

// A mistake in the operator file stops startup with a message naming it.
func TestOverrideErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"misspelt key", "connectors:\n  - name: x\n    display_name: X\n    auth_type: [basic]\n", "auth_type"},
		{"unknown auth type", "connectors:\n  - name: x\n    display_name: X\n    auth_types: [kerberos]\n", "kerberos"},
		{"bad name", "connectors:\n  - name: Bad-Name\n    display_name: X\n    auth_types: [basic]\n", "Bad-Name"},
		{"oauth without endpoints", "connectors:\n  - name: x\n    display_name: X\n    auth_types: [oauth2_authorization_code]\n", "token_url"},
		{"unknown instance field", "connectors:\n  - name: x\n    display_name: X\n    auth_types: [basic]\n    instance_parameters: [{name: region}]\n", "region"},
		{"listed twice", "connectors:\n  - {name: x, display_name: X, auth_types: [basic]}\n  - {name: x, display_name: X, auth_types: [basic]}\n", "twice"},
		{"placement nowhere", "connectors:\n  - {name: x, display_name: X, auth_types: [api_key], credential_placement: {in: body}}\n", "want bearer, header or query"},
		{"placement without a name", "connectors:\n  - {name: x, display_name: X, auth_types: [api_key], credential_placement: {in: header}}\n", "name must match"},
		{"placement header injection", "connectors:\n  - {name: x, display_name: X, auth_types: [api_key], credential_placement: {in: header, name: \"X: y\"}}\n", "name must match"},
		{"placement prefix control", "connectors:\n  - {name: x, display_name: X, auth_types: [api_key], credential_placement: {in: header, name: X-Key, prefix: \"a\\r\\nb\"}}\n", "printable"},
		{"query with prefix", "connectors:\n  - {name: x, display_name: X, auth_types: [api_key], credential_placement: {in: query, name: k, prefix: p}}\n", "no prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := catalog.Load(write(t, tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// Each auth type has one placement; API keys and custom headers follow the
// entry's credential_placement, with defaults when it is left out.
func TestPlacementFor(t *testing.T) {
	cat, err := catalog.Load(write(t, `connectors:
  - {name: hdr, display_name: H, auth_types: [api_key, custom_header], credential_placement: {in: header, name: X-Api-Key, prefix: "Token "}}
  - {name: qry, display_name: Q, auth_types: [api_key], credential_placement: {in: query, name: api_key}}
  - {name: plain, display_name: P, auth_types: [api_key, custom_header, basic]}
`))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *catalog.Connector { c, _ := cat.Get(name); return c }
	for _, tt := range []struct {
		name   string
		c      *catalog.Connector
		at     credentialv1.AuthType
		kind   credentialv1.PlacementKind
		header string
		prefix string
	}{
		{"named header", get("hdr"), credentialv1.AuthType_AUTH_TYPE_API_KEY, credentialv1.PlacementKind_PLACEMENT_KIND_HEADER, "X-Api-Key", "Token "},
		{"query parameter", get("qry"), credentialv1.AuthType_AUTH_TYPE_API_KEY, credentialv1.PlacementKind_PLACEMENT_KIND_QUERY_PARAMETER, "api_key", ""},
		{"api key default", get("plain"), credentialv1.AuthType_AUTH_TYPE_API_KEY, credentialv1.PlacementKind_PLACEMENT_KIND_AUTHORIZATION_BEARER, "", ""},
		{"custom header default", get("plain"), credentialv1.AuthType_AUTH_TYPE_CUSTOM_HEADER, credentialv1.PlacementKind_PLACEMENT_KIND_HEADER, "X-API-Key", ""},
		{"basic", get("plain"), credentialv1.AuthType_AUTH_TYPE_BASIC, credentialv1.PlacementKind_PLACEMENT_KIND_AUTHORIZATION_BASIC, "", ""},
		{"oauth 1.0a", get("plain"), credentialv1.AuthType_AUTH_TYPE_OAUTH1, credentialv1.PlacementKind_PLACEMENT_KIND_SIGNED, "", ""},
		{"oauth 2.0", get("plain"), credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE, credentialv1.PlacementKind_PLACEMENT_KIND_AUTHORIZATION_BEARER, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.c.PlacementFor(tt.at)
			if p.GetKind() != tt.kind || p.GetName() != tt.header || p.GetPrefix() != tt.prefix {
				t.Errorf("PlacementFor = %v, want %v %q %q", p, tt.kind, tt.header, tt.prefix)
			}
		})
	}
}

// check_interval is a duration; left out it is unset, "0s" means never.
func TestCheckInterval(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string // "" unset; "error"
	}{
		{"", ""},
		{"check_interval: 6h", "6h0m0s"},
		{"check_interval: 0s", "0s"},
		{"check_interval: -1h", "error"},
		{"check_interval: often", "error"},
	} {
		doc := "connectors:\n  - name: x\n    display_name: X\n    auth_types: [api_key]\n    default_base_url: https://x.test\n"
		if tc.yaml != "" {
			doc += "    " + tc.yaml + "\n"
		}
		file := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		cat, err := catalog.Load(file)
		if tc.want == "error" {
			if err == nil {
				t.Errorf("%q: accepted", tc.yaml)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		c, _ := cat.Get("x")
		if got := c.CheckInterval; tc.want == "" && got != nil || tc.want != "" && (got == nil || got.String() != tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, got, tc.want)
		}
	}
}
