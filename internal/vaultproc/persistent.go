package vaultproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/integrationhub/connections/internal/loopback"
)

// Persistent is a Vault server with file storage that keeps its data across
// restarts, initialised with one unseal key. Tests that stop and start Vault
// use it; dev mode would lose everything.
type Persistent struct {
	*Server
	dir       string
	unsealKey string
	logs      io.Writer
}

// StartPersistent starts Vault on file storage in dir, initialises and
// unseals it, and mounts KV v2 at secret/ (as dev mode does).
func StartPersistent(ctx context.Context, dir string, logs io.Writer) (*Persistent, error) {
	addrs, err := loopback.FreeAddrs(1)
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address     = %q
  tls_disable = true
}
disable_mlock = true
api_addr = "http://%s"
`, filepath.Join(dir, "data"), addrs[0], addrs[0])
	if err := os.WriteFile(filepath.Join(dir, "vault.hcl"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p := &Persistent{Server: &Server{Addr: "http://" + addrs[0]}, dir: dir, logs: logs}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	var init struct {
		Keys      []string `json:"keys"`
		RootToken string   `json:"root_token"`
	}
	if err := p.call(ctx, http.MethodPut, "/v1/sys/init", "", map[string]any{"secret_shares": 1, "secret_threshold": 1}, &init); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("vaultproc: init: %w", err)
	}
	if len(init.Keys) != 1 || init.RootToken == "" {
		_ = p.Stop()
		return nil, fmt.Errorf("vaultproc: init returned %d keys and no root token", len(init.Keys))
	}
	p.unsealKey, p.Token = init.Keys[0], init.RootToken
	if err := p.unseal(ctx); err != nil {
		_ = p.Stop()
		return nil, err
	}
	if err := p.call(ctx, http.MethodPost, "/v1/sys/mounts/secret", p.Token,
		map[string]any{"type": "kv", "options": map[string]string{"version": "2"}}, nil); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("vaultproc: mount kv: %w", err)
	}
	return p, nil
}

// Restart starts the stopped server again on the same data and unseals it.
func (p *Persistent) Restart(ctx context.Context) error {
	if err := p.start(ctx); err != nil {
		return err
	}
	return p.unseal(ctx)
}

func (p *Persistent) start(ctx context.Context) error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	*p.Server = Server{Addr: p.Addr, Token: p.Token} // a fresh process, a fresh Stop
	if err := p.launch(bin, p.logs, "server", "-config="+filepath.Join(p.dir, "vault.hcl")); err != nil {
		return fmt.Errorf("vaultproc: %w", err)
	}
	// Sealed or uninitialised servers answer /sys/health with 5xx codes;
	// /sys/seal-status answers 200 as soon as the listener is up.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := p.call(ctx, http.MethodGet, "/v1/sys/seal-status", "", nil, nil); err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("vaultproc: vault exited: %v", p.exitErr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.Stop()
			return fmt.Errorf("vaultproc: vault did not start in time")
		}
	}
}

func (p *Persistent) unseal(ctx context.Context) error {
	var st struct {
		Sealed bool `json:"sealed"`
	}
	if err := p.call(ctx, http.MethodPut, "/v1/sys/unseal", "", map[string]any{"key": p.unsealKey}, &st); err != nil || st.Sealed {
		return fmt.Errorf("vaultproc: unseal: %v (sealed %v)", err, st.Sealed)
	}
	return p.waitReady(ctx, 60*time.Second)
}

// call makes one Vault API request.
func (p *Persistent) call(ctx context.Context, method, path, token string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.Addr+path, r)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req) // raft init and unseal are slow on a busy machine
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
