package api

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// Connections that are never checked (their connector has no test request)
// sort first among those due; a pass reads past them to the ones that are,
// instead of stopping at its first page.
func TestChecksReadPastUncheckable(t *testing.T) {
	d := brokerDownDeps(t) // the broker is down: each check fails, and is noted as tried
	st := d.Store
	d.Checks = ChecksConfig{Period: time.Minute, Interval: time.Hour, Rate: 1000}
	s := New(d)
	create := func(connector, id string) string {
		c := &store.Connection{ID: id, WorkspaceID: "ws", Name: connector, Connector: connector,
			Environment: "production", AuthType: "api_key", Status: store.StatusActive,
			Instance: store.Instance{BaseURL: "https://api.example.com"}}
		if err := st.Create(context.Background(), "test", c); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	for range 7 {
		create("http", uuid.NewString()) // no test request
	}
	// The last in the order (never verified, then by id): past three pages.
	checkable := create("stripe", "ffffffff-ffff-4fff-bfff-ffffffffffff")
	c := newChecker(s, s.checks)
	c.batch = 2
	c.now = func() time.Time { return time.Now().Add(48 * time.Hour) } // everything made "two days ago"
	if err := c.pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.tried[checkable]; !ok || len(c.tried) != 1 {
		t.Errorf("tried %v; want only the stripe connection %s, found past the uncheckable ones", c.tried, checkable)
	}
}

// A connector whose refresh tokens expire when idle is checked at least
// every half of that time, whatever its own check interval says.
func TestCheckIntervalOfIdleRefreshTokens(t *testing.T) {
	file := filepath.Join(t.TempDir(), "catalog.yaml")
	entry := func(name, extra string) string {
		return "  - name: " + name + "\n    display_name: " + name + "\n    auth_types: [oauth2_authorization_code]\n" +
			"    default_base_url: https://api.example.com\n    allowed_hosts: [api.example.com]\n" +
			"    oauth2: {authorize_url: https://api.example.com/a, token_url: https://api.example.com/t}\n" +
			"    test_request: {method: GET, path: /me}\n" + extra
	}
	yaml := "connectors:\n" + entry("plain", "") + entry("idle", "    refresh_token_idle_ttl: 10h\n") +
		entry("idle_long", "    refresh_token_idle_ttl: 100h\n") + entry("idle_never", "    check_interval: 0s\n    refresh_token_idle_ttl: 10h\n")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{catalog: cat, checks: ChecksConfig{Period: time.Minute, Interval: 24 * time.Hour}}
	for connector, want := range map[string]time.Duration{"plain": 24 * time.Hour, "idle": 5 * time.Hour,
		"idle_long": 24 * time.Hour, "idle_never": 5 * time.Hour} {
		if got, ok := s.checkInterval(connector); !ok || got != want {
			t.Errorf("checkInterval(%s) = %v, %v; want %v", connector, got, ok, want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("connectors:\n"+entry("neg", "    refresh_token_idle_ttl: -1h\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Load(bad); err == nil {
		t.Error("a negative refresh_token_idle_ttl was accepted")
	}
}
