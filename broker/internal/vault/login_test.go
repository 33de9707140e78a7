package vault_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/integrationhub/connections/broker/internal/vault"
	"github.com/integrationhub/connections/internal/vaultproc"
)

// AppRole login against a real Vault, with a token that may be renewed for
// only a few seconds: the broker renews it, then logs in again when renewal
// ends, and keeps working throughout.
func TestAppRoleLoginRenewAndRelogin(t *testing.T) {
	srv, _ := startVault(t)
	root := rootClient(t, srv)
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(root.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &vaultapi.EnableAuthOptions{Type: "approle"}))
	must(root.Sys().PutPolicyWithContext(ctx, "broker", `
path "secret/data/test/*" { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/test/*" { capabilities = ["read", "delete"] }`))
	_, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/broker", map[string]any{
		"token_policies": "broker", "token_ttl": "2s", "token_max_ttl": "4s"})
	must(err)
	rid, err := root.Logical().ReadWithContext(ctx, "auth/approle/role/broker/role-id")
	must(err)
	sid, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/broker/secret-id", nil)
	must(err)

	c, err := vault.New(vault.Config{Addr: srv.Addr, KVMount: "secret", PathPrefix: "test", Timeout: 5 * time.Second})
	must(err)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	must(c.Login(lctx, vault.Auth{Method: "approle", AppRoleMount: "approle",
		RoleID: rid.Data["role_id"].(string), SecretID: sid.Data["secret_id"].(string)}, slog.New(slog.DiscardHandler)))
	kept := make(chan error, 1)
	go func() { kept <- c.KeepTokenAlive(lctx) }()
	defer func() { cancel(); <-kept }()

	const id = "0b5f0c1e-1111-4000-8000-00000000000a"
	first := c.API().Token()
	deadline := time.Now().Add(9 * time.Second) // past two max TTLs
	for time.Now().Before(deadline) {
		if _, err := c.Put(ctx, id, vault.Record{Connector: "http", AuthType: "AUTH_TYPE_API_KEY", APIKey: &vault.APIKey{Key: "k"}}); err != nil {
			t.Fatalf("Put with the AppRole token at %s: %v", time.Now().Format(time.StampMilli), err)
		}
		time.Sleep(500 * time.Millisecond) // wall clock: writes spread over two of the real Vault token's lifetimes
	}
	if c.API().Token() == first {
		t.Error("the token was never replaced, though its max TTL passed")
	}
}

// A wrong secret id stops startup with a clear error.
func TestAppRoleBadCredentials(t *testing.T) {
	srv, _ := startVault(t)
	c, err := vault.New(vault.Config{Addr: srv.Addr, KVMount: "secret", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(t.Context(), vault.Auth{Method: "approle", AppRoleMount: "approle", RoleID: "x", SecretID: "y"},
		slog.New(slog.DiscardHandler)); err == nil {
		t.Error("login with made-up AppRole credentials succeeded")
	}
}

// logSink collects log records for assertions.
type logSink struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}
func (l *logSink) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSink) WithGroup(string) slog.Handler      { return l }

func (l *logSink) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Level >= slog.LevelError {
			out = append(out, r.Message)
		}
	}
	return out
}

// A periodic token (the token method the operator guide recommends), here
// with a 3-second period: the broker renews it and keeps working well past
// the period; once the token is revoked, renewal fails with an error-level
// log and the token no longer counts as valid.
func TestPeriodicTokenRenewed(t *testing.T) {
	srv, _ := startVault(t)
	root := rootClient(t, srv)
	ctx := t.Context()
	if err := root.Sys().PutPolicyWithContext(ctx, "broker", `
path "secret/data/test/*" { capabilities = ["create", "read", "update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	const period = 3 * time.Second
	created, err := root.Auth().Token().CreateOrphanWithContext(ctx, &vaultapi.TokenCreateRequest{
		Policies: []string{"broker"}, NoDefaultPolicy: true, Period: period.String()})
	if err != nil {
		t.Fatal(err)
	}
	tok := created.Auth.ClientToken

	sink := &logSink{}
	c, err := vault.New(vault.Config{Addr: srv.Addr, KVMount: "secret", PathPrefix: "test", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, vault.Auth{Method: "token", Token: tok}, slog.New(sink)); err != nil {
		t.Fatal(err)
	}
	if exp := c.TokenExpiry(); exp.IsZero() || time.Until(exp) > period {
		t.Errorf("token expiry %v, want within the period", exp)
	}
	lctx, cancel := context.WithCancel(ctx)
	kept := make(chan error, 1)
	go func() { kept <- c.KeepTokenAlive(lctx) }()
	defer func() { cancel(); <-kept }()

	const id = "0b5f0c1e-1111-4000-8000-00000000000b"
	end := time.Now().Add(3 * period)
	for time.Now().Before(end) {
		if _, err := c.Put(ctx, id, vault.Record{Connector: "http", AuthType: "AUTH_TYPE_API_KEY", APIKey: &vault.APIKey{Key: "k"}}); err != nil {
			t.Fatalf("Put with the periodic token at %s: %v", time.Now().Format(time.StampMilli), err)
		}
		if !c.TokenValid() {
			t.Fatal("the renewed token counts as invalid")
		}
		time.Sleep(250 * time.Millisecond) // wall clock: writes spread over three renewal periods
	}
	if errs := sink.errors(); len(errs) > 0 {
		t.Errorf("error logs while renewal works: %q", errs)
	}

	// Revoked: renewal fails, loudly, and the token stops counting as valid.
	if err := root.Auth().Token().RevokeOrphanWithContext(ctx, tok); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * period)
	for c.TokenValid() || len(sink.errors()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("revoked token: valid %v, error logs %q", c.TokenValid(), sink.errors())
		}
		time.Sleep(100 * time.Millisecond) // polling pace, bounded by the deadline
	}
}

// A made-up token stops startup with a clear error.
func TestBadTokenRefusedAtLogin(t *testing.T) {
	srv, _ := startVault(t)
	c, err := vault.New(vault.Config{Addr: srv.Addr, KVMount: "secret", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(t.Context(), vault.Auth{Method: "token", Token: "hvs.made-up"}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("login with a made-up token succeeded")
	}
}

// rootClient is a Vault API client of srv with its root token, for the
// operator's side of a test (policies, roles, auth methods).
func rootClient(t *testing.T, srv *vaultproc.Server) *vaultapi.Client {
	t.Helper()
	root, err := vaultapi.NewClient(&vaultapi.Config{Address: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(srv.Token)
	return root
}
