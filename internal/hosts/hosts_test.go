package hosts

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestAllow(t *testing.T) {
	patterns := []string{"api.github.com", "*.zendesk.com", "127.0.0.1:8443", "[::1]:9000"}
	tests := []struct {
		url  string
		want bool
	}{
		{"https://api.github.com/user", true},
		{"https://API.GitHub.com:443/user", true},
		{"https://acme.zendesk.com/api", true},
		{"https://a.b.zendesk.com/api", true},
		{"https://zendesk.com/api", false},
		{"https://evilzendesk.com/api", false},
		{"https://acme.zendesk.com.evil.test/api", false},
		{"https://api.github.com.evil.test/", false},
		{"https://api.github.com@evil.test/", false},
		{"https://evil.test/#api.github.com", false},
		{"http://127.0.0.1:8443/x", true},
		{"http://127.0.0.1:8444/x", false},
		{"http://[::1]:9000/x", true},
		{"ftp://api.github.com/", false},
		{"api.github.com", false},
		{"", false},
	}
	for _, tt := range tests {
		err := Allow(patterns, tt.url)
		var na *NotAllowedError
		if (err == nil) != tt.want || (err != nil && !errors.As(err, &na)) {
			t.Errorf("Allow(%q) = %v, want allowed=%v (or a NotAllowedError)", tt.url, err, tt.want)
		}
	}
	if err := Allow(nil, "https://api.github.com/user"); !errors.Is(err, ErrUnbound) {
		t.Errorf("Allow with no hosts = %v, want ErrUnbound", err)
	}
}

func TestCheck(t *testing.T) {
	for _, p := range []string{"api.github.com", "*.zendesk.com", "127.0.0.1:8443", "localhost"} {
		if err := Check(p); err != nil {
			t.Errorf("Check(%q): %v", p, err)
		}
	}
	for _, p := range []string{"", "*", "*.com", "a/b", "*.*.x.com", ".x.com", "a..b"} {
		if err := Check(p); err == nil {
			t.Errorf("Check(%q) accepted a bad pattern", p)
		}
	}
}

// Whatever the URL, a match means its host really is the pattern's host (or
// below the wildcard's domain): no parser trick gets a credential elsewhere.
func FuzzAllow(f *testing.F) {
	for _, s := range []string{"https://api.github.com/user", "https://api.github.com@evil.test/", "https://evil.test\\@api.github.com/",
		"https://api.github.com%2eevil.test/", "https://acme.zendesk.com./x", "http://[::1]:9000/", "https://API.GITHUB.COM:443"} {
		f.Add(s)
	}
	patterns := []string{"api.github.com", "*.zendesk.com"}
	f.Fuzz(func(t *testing.T, raw string) {
		if Allow(patterns, raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%q matched but does not parse", raw)
		}
		h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if h != "api.github.com" && !strings.HasSuffix(h, ".zendesk.com") {
			t.Fatalf("%q matched but its host is %q", raw, h)
		}
	})
}
