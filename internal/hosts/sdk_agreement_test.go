package hosts_test

import (
	"errors"
	"net/url"
	"testing"

	"github.com/integrationhub/connections/internal/hosts"
	"github.com/integrationhub/connections/sdk/go/worker"
)

// The Go worker SDK carries its own copy of this package's rule (its module
// cannot import an internal package): both must send a credential to
// exactly the same URLs.
var agreementPatterns = [][]string{
	{"api.github.com"},
	{"API.GitHub.com"},
	{"*.zendesk.com"},
	{"*.Zendesk.COM"},
	{"127.0.0.1:8443"},
	{"127.0.0.1"},
	{"localhost"},
	{"[::1]:9000"},
	{"[::1]"},
	{"::1"},
	{"api.github.com", "*.zendesk.com", "127.0.0.1:8443", "[::1]:9000"},
	{"acme.zendesk.com."},
	{"api.github.com:443"},
}

var agreementURLs = []string{
	"https://api.github.com/user",
	"https://API.GitHub.com:443/user",
	"https://api.github.com:8443/user",
	"http://api.github.com/user",
	"https://api.github.com./user",
	"https://api.github.com.evil.test/",
	"https://api.github.com@evil.test/",
	"https://user:pw@api.github.com/",
	"https://evil.test/#api.github.com",
	"https://evil.test/?h=api.github.com",
	"https://evil.test\\@api.github.com/",
	"https://api.github.com%2eevil.test/",
	"https://acme.zendesk.com/api",
	"https://a.b.zendesk.com/api",
	"https://ACME.ZENDESK.COM:444/api",
	"https://acme.zendesk.com./x",
	"https://zendesk.com/api",
	"https://.zendesk.com/api",
	"https://evilzendesk.com/api",
	"https://acme.zendesk.com.evil.test/api",
	"http://127.0.0.1:8443/x",
	"http://127.0.0.1:8444/x",
	"http://127.0.0.1/x",
	"http://127.0.0.1:/x",
	"http://localhost:8443/x",
	"http://LOCALHOST/x",
	"http://[::1]:9000/x",
	"http://[::1]:9001/x",
	"http://[::1]/x",
	"http://[0:0:0:0:0:0:0:1]:9000/x",
	"ftp://api.github.com/",
	"HTTPS://api.github.com/",
	"api.github.com",
	"//api.github.com/user",
	"/user",
	"",
}

// agree checks that the package and the SDK answer alike whether a
// credential bound to patterns may go to raw. A URL that does not parse
// never reaches the SDK (http.NewRequest refuses it); the package refuses it.
func agree(t *testing.T, patterns []string, raw string) {
	t.Helper()
	pkg := hosts.Allow(patterns, raw)
	var na *hosts.NotAllowedError
	if pkg != nil && !errors.As(pkg, &na) {
		t.Fatalf("hosts.Allow(%q, %q) = %v, want nil or a NotAllowedError", patterns, raw, pkg)
	}
	u, err := url.Parse(raw)
	if err != nil {
		if pkg == nil {
			t.Errorf("hosts.Allow(%q, %q) allowed a URL that does not parse", patterns, raw)
		}
		return
	}
	if uerr := hosts.AllowURL(patterns, u); (uerr == nil) != (pkg == nil) {
		t.Errorf("hosts.AllowURL(%q, %q) = %v but hosts.Allow = %v", patterns, raw, uerr, pkg)
	}
	sdk := (&worker.Credential{ConnectionID: "c1", AllowedHosts: patterns}).CheckURL(u)
	var hna *worker.HostNotAllowedError
	if sdk != nil && !errors.As(sdk, &hna) {
		t.Errorf("SDK CheckURL(%q, %q) = %v, want nil or a HostNotAllowedError", patterns, raw, sdk)
	}
	if (sdk == nil) != (pkg == nil) {
		t.Errorf("hosts.Allow(%q, %q) = %v but the SDK's CheckURL = %v: they disagree", patterns, raw, pkg, sdk)
	}
}

func TestSDKAgreesWithHosts(t *testing.T) {
	allowed := 0
	for _, p := range agreementPatterns {
		for _, raw := range agreementURLs {
			agree(t, p, raw)
			if hosts.Allow(p, raw) == nil {
				allowed++
			}
		}
	}
	if allowed == 0 {
		t.Fatal("the table allows nothing: it shows no agreement")
	}
}

// FuzzSDKAgreesWithHosts looks for a URL the two rules answer differently.
func FuzzSDKAgreesWithHosts(f *testing.F) {
	for i, raw := range agreementURLs {
		f.Add(i, raw)
	}
	f.Fuzz(func(t *testing.T, i int, raw string) {
		agree(t, agreementPatterns[uint(i)%uint(len(agreementPatterns))], raw)
	})
}
