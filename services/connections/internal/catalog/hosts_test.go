package catalog_test

import (
	"slices"
	"strings"
	"testing"

	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

	"github.com/integrationhub/connections/services/connections/internal/catalog"
)

// Each connector says where its credentials may go; an instance pointing
// elsewhere is refused, and so is a base_url on a connector without one.
func TestCheckInstanceAllowedHosts(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		connector, baseURL string
		ok                 bool
	}{
		{"github", "", true},
		{"github", "https://api.github.com", false}, // GitHub takes no base_url at all
		{"github", "https://attacker.test", false},
		{"salesforce", "https://acme.my.salesforce.com", true},
		{"salesforce", "https://acme--dev.sandbox.my.salesforce.com", true},
		{"salesforce", "https://salesforce.com.attacker.test", false},
		{"salesforce", "https://attacker.test/.salesforce.com", false},
		{"jira", "https://acme.atlassian.net", true},
		{"jira", "https://acme.atlassian.net.attacker.test", false},
		{"http", "https://any.example.org", true}, // any host: the connection is bound to it
		{"stripe", "https://api.stripe.com", false},
	}
	for _, tt := range tests {
		conn, _ := cat.Get(tt.connector)
		field, why, ok := conn.CheckInstance(&credentialv1.AppInstance{BaseUrl: tt.baseURL})
		if ok != tt.ok {
			t.Errorf("%s with base_url %q: ok=%v (%s: %s), want %v", tt.connector, tt.baseURL, ok, field, why, tt.ok)
		}
		if !ok && field != "instance.base_url" {
			t.Errorf("%s: refusal names %q, want instance.base_url", tt.connector, field)
		}
	}
}

// A connection's hosts are concrete where its instance decides them.
func TestHostsFor(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	zd, _ := cat.Get("zendesk")
	if got := zd.HostsFor(&credentialv1.AppInstance{Subdomain: "acme"}); !slices.Equal(got, []string{"acme.zendesk.com"}) {
		t.Errorf("zendesk acme: %v, want [acme.zendesk.com]", got)
	}
	h, _ := cat.Get("http")
	if got := h.HostsFor(&credentialv1.AppInstance{BaseUrl: "https://API.Example.com:8443/v1"}); !slices.Equal(got, []string{"api.example.com:8443"}) {
		t.Errorf("http: %v, want the base_url's host only", got)
	}
	gh, _ := cat.Get("github")
	if got := gh.HostsFor(nil); !slices.Contains(got, "api.github.com") {
		t.Errorf("github: %v, want api.github.com", got)
	}
}

// An operator entry without allowed_hosts allows the hosts of its own URLs;
// one whose endpoints fall outside its allowed_hosts stops loading.
func TestAllowedHostsDefaultsAndValidation(t *testing.T) {
	cat, err := catalog.Load(write(t, `connectors:
  - name: acme
    display_name: ACME
    auth_types: [oauth2_authorization_code]
    default_base_url: http://127.0.0.1:9000
    oauth2: {authorize_url: http://127.0.0.1:9001/authorize, token_url: http://127.0.0.1:9001/token}
`))
	if err != nil {
		t.Fatal(err)
	}
	acme, _ := cat.Get("acme")
	if got := acme.HostsFor(nil); !slices.Equal(got, []string{"127.0.0.1:9000", "127.0.0.1:9001"}) {
		t.Errorf("derived hosts %v", got)
	}
	_, err = catalog.Load(write(t, `connectors:
  - name: acme
    display_name: ACME
    auth_types: [oauth2_authorization_code]
    allowed_hosts: [api.acme.test, auth.acme.test]
    oauth2: {authorize_url: https://auth.acme.test/authorize, token_url: https://attacker.test/token}
`))
	if err == nil || !strings.Contains(err.Error(), "attacker.test") {
		t.Errorf("a token endpoint outside allowed_hosts loaded: %v", err)
	}
}
