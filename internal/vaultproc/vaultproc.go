// Package vaultproc finds the Vault binary this project builds and runs it as
// a dev-mode server on loopback, for the local stack and for tests.
package vaultproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/integrationhub/connections/internal/childproc"
	"github.com/integrationhub/connections/internal/loopback"
)

// Version is the Vault release scripts/vault-build.sh builds.
const Version = "v1.21.0"

// Binary returns the path of the Vault binary: $VAULT_BIN when set, else the
// build cached by scripts/vault-build.sh in the user cache folder.
func Binary() (string, error) {
	if p := os.Getenv("VAULT_BIN"); p != "" {
		return p, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("vaultproc.Binary: %w", err)
	}
	p := filepath.Join(dir, "integrationhub", "vault-"+Version, "vault")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("vaultproc.Binary: no Vault binary at %s (build it with scripts/vault-build.sh): %w", p, err)
	}
	return p, nil
}

// Server is a running Vault dev server.
type Server struct {
	Addr     string // e.g. http://127.0.0.1:8200
	Token    string // root token
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has exited
	exitErr  error         // valid once exited is closed
	stopOnce sync.Once
}

// StartDev starts `vault server -dev` on a free loopback port with a random
// root token and waits until it answers. Its output goes to logs (may be nil).
// Dev mode keeps everything in memory and mounts KV v2 at "secret/".
func StartDev(ctx context.Context, logs io.Writer) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	addrs, err := loopback.FreeAddrs(1)
	if err != nil {
		return nil, fmt.Errorf("vaultproc.StartDev: %w", err)
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("vaultproc.StartDev: %w", err)
	}
	s := &Server{
		Addr:  "http://" + addrs[0],
		Token: "devroot-" + hex.EncodeToString(tok), // Vault refuses custom ids with its own "hvs." prefix
	}
	if err := s.launch(bin, logs, "server", "-dev",
		"-dev-listen-address="+addrs[0],
		"-dev-root-token-id="+s.Token,
		"-dev-no-store-token",
	); err != nil {
		return nil, fmt.Errorf("vaultproc.StartDev: %w", err)
	}
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("vaultproc.StartDev: %w", err)
	}
	return s, nil
}

// Freeze stops the server's process (SIGSTOP) without ending it: requests
// hang, as with a stalled disk or a long GC pause. Thaw resumes it.
func (s *Server) Freeze() error { return s.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() error { return s.cmd.Process.Signal(syscall.SIGCONT) }

// Kill ends the server at once (SIGKILL), as a crash would, and waits for
// it to exit. A later Stop does nothing.
func (s *Server) Kill() error {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
	return nil
}

// Stop ends the server and waits for it to exit. Calling it again is safe.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return nil
}

func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Addr+"/v1/sys/health", nil)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("vault exited before it was ready: %v", s.exitErr)
		case <-ctx.Done():
			return errors.New("vault did not become ready in time")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// launch starts the Vault binary with args and watches for its exit.
func (s *Server) launch(bin string, logs io.Writer, args ...string) error {
	s.exited = make(chan struct{})
	s.cmd = exec.Command(bin, args...)
	// Vault reads its own settings from the environment; keep the caller's out.
	s.cmd.Env = append(filteredEnv(), "HOME="+os.TempDir())
	s.cmd.Stdout, s.cmd.Stderr = logs, logs
	childproc.Tie(s.cmd)
	if err := s.cmd.Start(); err != nil {
		return err
	}
	go func() { s.exitErr = s.cmd.Wait(); close(s.exited) }()
	return nil
}

func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if len(kv) >= 6 && kv[:6] == "VAULT_" {
			continue
		}
		env = append(env, kv)
	}
	return env
}
