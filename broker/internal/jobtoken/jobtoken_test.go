package jobtoken_test

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/integrationhub/connections/internal/vaultproc"

	"github.com/integrationhub/connections/broker/internal/jobtoken"
	"github.com/integrationhub/connections/broker/internal/vault"
)

// authority runs against a real Vault with a transit mount and key.
func authority(t *testing.T) (*jobtoken.Authority, *vaultapi.Client, *vault.Client) {
	return authorityTB(t)
}

func authorityTB(t testing.TB) (*jobtoken.Authority, *vaultapi.Client, *vault.Client) {
	t.Helper()
	srv, err := vaultproc.StartDev(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	root, _ := vaultapi.NewClient(&vaultapi.Config{Address: srv.Addr})
	root.SetToken(srv.Token)
	if err := root.Sys().MountWithContext(t.Context(), "transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	vc, err := vault.New(vault.Config{Addr: srv.Addr, KVMount: "secret", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.Login(t.Context(), vault.Auth{Method: "token", Token: srv.Token}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := vc.EnsureTransitKey(t.Context(), "transit", "job-tokens"); err != nil {
		t.Fatal(err)
	}
	return jobtoken.New(config("integrationhub-broker"), vc), root, vc
}

func config(audience string) jobtoken.Config {
	return jobtoken.Config{Mount: "transit", Key: "job-tokens", Issuer: "integrationhub-broker", Audience: audience, Refresh: 0}
}

func claims() jobtoken.Claims {
	return jobtoken.Claims{Workspace: "ws", Recipe: "r-1", Job: "job-42", Connections: []string{"c1", "c2"}}
}

func TestMintAndVerify(t *testing.T) {
	a, root, vc := authority(t)
	ctx := t.Context()
	tok, exp, err := a.Mint(ctx, claims(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(exp) > time.Minute || time.Until(exp) < 50*time.Second {
		t.Errorf("expiry %v, want about a minute from now", exp)
	}
	c, err := a.Verify(ctx, tok)
	if err != nil || c.Recipe != "r-1" || c.Job != "job-42" || len(c.Connections) != 2 {
		t.Fatalf("Verify = %+v, %v", c, err)
	}

	expired, _, err := a.Mint(ctx, claims(), -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Same key, another audience (another deployment's broker).
	elsewhere, _, err := jobtoken.New(config("another-broker"), vc).Mint(ctx, claims(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// A claim changed after signing: recipe r-1 becomes r-2.
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), `"recipe":"r-1"`, `"recipe":"r-2"`, 1)
	if forged == string(payload) {
		t.Fatal("the payload has no recipe claim to change")
	}
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]

	tests := []struct{ name, token string }{
		{"expired", expired},
		{"other audience", elsewhere},
		{"tampered claim", tampered},
		{"garbage", "a.b.c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := a.Verify(ctx, tt.token); !errors.Is(err, jobtoken.ErrInvalid) {
				t.Errorf("Verify = %v, want ErrInvalid", err)
			}
		})
	}

	// Retiring a key version: rotate, then have Vault refuse version 1.
	if _, err := root.Logical().WriteWithContext(ctx, "transit/keys/job-tokens/rotate", nil); err != nil {
		t.Fatal(err)
	}
	newer, _, err := a.Mint(ctx, claims(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(ctx, tok); err != nil {
		t.Errorf("version 1 token before retirement: %v", err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "transit/keys/job-tokens/config", map[string]any{"min_decryption_version": 2}); err != nil {
		t.Fatal(err)
	}
	// The keys are read again in the background (never inside a call):
	// the retired version is refused once that read is done.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := a.Verify(ctx, tok)
		if errors.Is(err, jobtoken.ErrInvalid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token signed by a retired version: %v, want ErrInvalid within 10s", err)
		}
		time.Sleep(20 * time.Millisecond) // polling pace
	}
	if _, err := a.Verify(ctx, newer); err != nil {
		t.Errorf("token signed by the current version: %v", err)
	}
}

// A token verified once is remembered, but not past its expiry.
func TestRememberedTokenExpires(t *testing.T) {
	a, _, _ := authority(t)
	ctx := t.Context()
	tok, _, err := a.Mint(ctx, claims(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Minute)
	jobtoken.SetClock(a, func() time.Time { return later })
	if _, err := a.Verify(ctx, tok); !errors.Is(err, jobtoken.ErrInvalid) {
		t.Errorf("remembered token after its expiry: %v, want ErrInvalid", err)
	}
}

// BenchmarkVerify measures a job token's first verification (signature and
// claims) against the remembered path every later call takes.
//
//	go test -run '^$' -bench Verify ./internal/jobtoken/
func BenchmarkVerify(b *testing.B) {
	_, _, vc := authorityTB(b)
	cfg := config("integrationhub-broker")
	cfg.Refresh = 30 * time.Second // as the broker runs: keys read twice a minute
	a := jobtoken.New(cfg, vc)
	ctx := b.Context()
	tok, _, err := a.Mint(ctx, claims(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			if err := jobtoken.VerifyAfresh(a, ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// After an emergency retirement (rotate, raise min_decryption_version) a
// broker whose cached keys still name the retired version as the latest
// re-reads them on Vault's refusal and signs with the new version at once.
func TestMintAfterRetirementUsesTheNewVersion(t *testing.T) {
	_, root, vc := authority(t)
	ctx := t.Context()
	cfg := config("integrationhub-broker")
	cfg.Refresh = time.Hour // the cached keys would otherwise stay for an hour
	a := jobtoken.New(cfg, vc)
	if _, _, err := a.Mint(ctx, claims(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "transit/keys/job-tokens/rotate", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "transit/keys/job-tokens/config", map[string]any{"min_decryption_version": 2}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.Mint(ctx, claims(), time.Minute)
	if err != nil {
		t.Fatalf("Mint after the retirement: %v", err)
	}
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if !strings.Contains(string(header), `"kid":"v2"`) {
		t.Errorf("token header %s, want kid v2", header)
	}
	if _, err := a.Verify(ctx, tok); err != nil {
		t.Errorf("the new token does not verify: %v", err)
	}
}
