package config

import (
	"strings"
	"testing"
	"time"
)

func TestAccessRetention(t *testing.T) {
	required := []string{"-jwks", "keys.json", "-jwt-issuer", "https://issuer.test"}
	tests := []struct {
		name    string
		args    []string
		env     string // CONNECTIONS_ACCESS_RETENTION, "" for unset
		want    time.Duration
		wantErr string
	}{
		{"default 90 days", nil, "", 2160 * time.Hour, ""},
		{"flag", []string{"-access-retention", "720h"}, "", 720 * time.Hour, ""},
		{"environment", nil, "168h", 168 * time.Hour, ""},
		{"flag wins", []string{"-access-retention", "1h"}, "168h", time.Hour, ""},
		{"zero keeps forever", nil, "0", 0, ""},
		{"negative", []string{"-access-retention", "-1h"}, "", 0, "-access-retention must not be negative"},
		{"malformed", nil, "90d", 0, "CONNECTIONS_ACCESS_RETENTION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("CONNECTIONS_ACCESS_RETENTION", tt.env)
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
			if c.AccessRetention != tt.want {
				t.Errorf("AccessRetention = %v, want %v", c.AccessRetention, tt.want)
			}
		})
	}
}

func TestOAuthStateTTL(t *testing.T) {
	required := []string{"-jwks", "keys.json", "-jwt-issuer", "https://issuer.test"}
	tests := []struct {
		name    string
		args    []string
		want    time.Duration
		wantErr string
	}{
		{"default 10 minutes", nil, 10 * time.Minute, ""},
		{"flag", []string{"-oauth-state-ttl", "30s"}, 30 * time.Second, ""},
		{"zero", []string{"-oauth-state-ttl", "0"}, 0, "-oauth-state-ttl must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
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
			if c.OAuthStateTTL != tt.want {
				t.Errorf("OAuthStateTTL = %v, want %v", c.OAuthStateTTL, tt.want)
			}
		})
	}
}
