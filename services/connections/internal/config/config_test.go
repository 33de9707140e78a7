package config

import (
	"strings"
	"testing"
	"time"
)

// TestDurations covers the duration settings with defaults and limits of
// their own: each from its flag or its environment variable (the flag wins),
// and refused with a message naming it when out of range or malformed.
func TestDurations(t *testing.T) {
	required := []string{"-jwks", "keys.json", "-jwt-issuer", "https://issuer.test"}
	retention := func(c Config) time.Duration { return c.AccessRetention }
	stateTTL := func(c Config) time.Duration { return c.OAuthStateTTL }
	tests := []struct {
		name    string
		get     func(Config) time.Duration
		args    []string
		env     [2]string // name, value; unset when empty
		want    time.Duration
		wantErr string
	}{
		{"retention: default 90 days", retention, nil, [2]string{}, 2160 * time.Hour, ""},
		{"retention: flag", retention, []string{"-access-retention", "720h"}, [2]string{}, 720 * time.Hour, ""},
		{"retention: environment", retention, nil, [2]string{"CONNECTIONS_ACCESS_RETENTION", "168h"}, 168 * time.Hour, ""},
		{"retention: flag wins", retention, []string{"-access-retention", "1h"}, [2]string{"CONNECTIONS_ACCESS_RETENTION", "168h"}, time.Hour, ""},
		{"retention: zero keeps forever", retention, nil, [2]string{"CONNECTIONS_ACCESS_RETENTION", "0"}, 0, ""},
		{"retention: negative", retention, []string{"-access-retention", "-1h"}, [2]string{}, 0, "-access-retention must not be negative"},
		{"retention: malformed", retention, nil, [2]string{"CONNECTIONS_ACCESS_RETENTION", "90d"}, 0, "CONNECTIONS_ACCESS_RETENTION"},
		{"state TTL: default 10 minutes", stateTTL, nil, [2]string{}, 10 * time.Minute, ""},
		{"state TTL: flag", stateTTL, []string{"-oauth-state-ttl", "30s"}, [2]string{}, 30 * time.Second, ""},
		{"state TTL: environment", stateTTL, nil, [2]string{"CONNECTIONS_OAUTH_STATE_TTL", "2m"}, 2 * time.Minute, ""},
		{"state TTL: zero", stateTTL, []string{"-oauth-state-ttl", "0"}, [2]string{}, 0, "-oauth-state-ttl must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env[0] != "" {
				t.Setenv(tt.env[0], tt.env[1])
			}
			c, err := Load(append(append([]string{}, required...), tt.args...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Load = %v, want an error about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(c); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
