package vault_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/integrationhub/connections/internal/vaultproc"

	"github.com/integrationhub/connections/broker/internal/vault"
)

func startVault(t *testing.T) (*vaultproc.Server, *vault.Client) {
	t.Helper()
	srv, err := vaultproc.StartDev(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	c, err := vault.New(vault.Config{Addr: srv.Addr, KVMount: "secret", PathPrefix: "/test/", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(t.Context(), vault.Auth{Method: "token", Token: srv.Token}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func TestRecordLifecycle(t *testing.T) {
	_, c := startVault(t)
	ctx := t.Context()
	const id = "0b5f0c1e-1111-4000-8000-000000000001"
	if got := c.Path(id); got != "test/connections/"+id {
		t.Errorf("Path = %q; the prefix must be trimmed of slashes", got)
	}
	if _, _, err := c.Get(ctx, id); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("Get before Put: %v, want ErrNotFound", err)
	}
	rec := vault.Record{WorkspaceID: "ws", Connector: "http", AuthType: "AUTH_TYPE_BASIC",
		Instance: vault.Instance{BaseURL: "https://x.test", Sandbox: true},
		Basic:    &vault.Basic{Username: "u", Password: "p"}}
	v1, err := c.Put(ctx, id, rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Basic.Password = "p2"
	v2, err := c.Put(ctx, id, rec)
	if err != nil || v2 != v1+1 {
		t.Fatalf("second Put = version %d, %v; want %d", v2, err, v1+1)
	}
	got, v, err := c.Get(ctx, id)
	if err != nil || v != v2 || got.Basic.Password != "p2" || got.Instance != rec.Instance {
		t.Fatalf("Get = %+v v%d, %v; want the second version", got, v, err)
	}
	if err := c.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, id); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := c.Delete(ctx, id); err != nil {
		t.Errorf("Delete of a missing record: %v, want success", err)
	}
}

// Printing a record (as a careless log line would) shows no secret.
func TestRecordStringRedacts(t *testing.T) {
	b := vault.Basic{Username: "u", Password: "hunter2"}
	k := vault.APIKey{Key: "sk_live", Secret: "whsec"}
	for _, s := range []string{b.String(), k.String()} {
		for _, secret := range []string{"hunter2", "sk_live", "whsec"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q shows %q", s, secret)
			}
		}
	}
}

// A Vault that is down is ErrUnavailable, not "not found".
func TestUnavailable(t *testing.T) {
	srv, c := startVault(t)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Get(t.Context(), "0b5f0c1e-1111-4000-8000-000000000002")
	if !errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("Get with Vault stopped: %v, want ErrUnavailable", err)
	}
}

// A KV mount that does not answer (a node that just became active has not
// set its mounts up; here, a mount that does not exist) is Unavailable for
// reads and listings, never "no secret stored": Vault's client reads any 404
// as empty, which would make a failover look like every secret vanished. A
// real miss on a mount that answers stays ErrNotFound.
func TestUnroutedMountIsUnavailable(t *testing.T) {
	srv, c := startVault(t)
	if _, _, err := c.Get(t.Context(), "0b5f0c1e-1111-4000-8000-000000000003"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Get of a missing secret: %v, want ErrNotFound", err)
	}
	unmounted, err := vault.New(vault.Config{Addr: srv.Addr, KVMount: "not-mounted", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := unmounted.Login(t.Context(), vault.Auth{Method: "token", Token: srv.Token}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := unmounted.Get(t.Context(), "0b5f0c1e-1111-4000-8000-000000000003"); !errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("Get on a mount that does not answer: %v, want ErrUnavailable", err)
	}
	if _, _, err := unmounted.ListKeys(t.Context(), "", 10); !errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("ListKeys on a mount that does not answer: %v, want ErrUnavailable", err)
	}
	if _, err := unmounted.Generations(t.Context(), "0b5f0c1e-1111-4000-8000-000000000003"); !errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("Generations on a mount that does not answer: %v, want ErrUnavailable", err)
	}
}
