package hosts

import "testing"

func TestMatchURL(t *testing.T) {
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
		if got := MatchURL(patterns, tt.url); got != tt.want {
			t.Errorf("MatchURL(%q) = %v, want %v", tt.url, got, tt.want)
		}
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
