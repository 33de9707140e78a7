package vault_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// AppRole login against a real Vault, with a token that may be renewed for
// only a few seconds: the broker renews it, then logs in again when renewal
// ends, and keeps working throughout.
func TestAppRoleLoginRenewAndRelogin(t *testing.T) {
	srv, _ := startVault(t)
	root, err := vaultapi.NewClient(&vaultapi.Config{Address: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(srv.Token)
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
	_, err = root.Logical().WriteWithContext(ctx, "auth/approle/role/broker", map[string]any{
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

	const id = "0b5f0c1e-1111-4000-8000-00000000000a"
	first := c.API().Token()
	deadline := time.Now().Add(9 * time.Second) // past two max TTLs
	for time.Now().Before(deadline) {
		if _, err := c.Put(ctx, id, vault.Record{Connector: "http", AuthType: "AUTH_TYPE_API_KEY", APIKey: &vault.APIKey{Key: "k"}}); err != nil {
			t.Fatalf("Put with the AppRole token at %s: %v", time.Now().Format(time.StampMilli), err)
		}
		time.Sleep(500 * time.Millisecond)
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
