package e2e

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's first command as a newcomer runs it: `hub dev` starts the
// local stack, runs its demo (a platform service, a job scheduler, a worker
// on the SDK and one through the broker's egress proxy, an auditor), and
// the commands it prints work when pasted into a shell as they are.
func TestDevCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second local stack")
	}
	root, err := filepath.Abs("..") // tests run in e2e/
	if err != nil {
		t.Fatal(err)
	}
	// Below the working directory, as scripts/dev.sh builds .bin/hub: then
	// the commands it prints run this binary, not go run.
	if err := os.MkdirAll(filepath.Join(root, ".bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	binDir, err := os.MkdirTemp(filepath.Join(root, ".bin"), "devtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	bin := filepath.Join(binDir, "hub")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hub")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hub: %v\n%s", err, out)
	}
	dev := exec.Command(bin, "dev", "-dir", t.TempDir())
	dev.Dir = root
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	dev.Stderr = &stderr
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = dev.Process.Kill()
		<-exited
	})

	// Read what it prints until it serves (or exits).
	lines := make(chan string, 10000) // the reader never waits on this test
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- dev.Wait()
		close(lines)
	}()
	var printed []string
	timeout := time.After(3 * time.Minute) // builds both services first
	for serving := false; !serving; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("hub dev exited before serving:\n%s\n%s", strings.Join(printed, "\n"), stderr.String())
			}
			printed = append(printed, l)
			serving = strings.HasPrefix(l, "serving until interrupted")
		case <-timeout:
			t.Fatalf("hub dev did not serve within 3 minutes:\n%s", strings.Join(printed, "\n"))
		}
	}
	out := strings.Join(printed, "\n")
	for _, want := range []string{
		"-> CONNECTION_STATUS_ACTIVE",
		"-> AUTH_TYPE_API_KEY for http://127.0.0.1:", // the base URL the SDK resolves paths on
		"(matches what was stored: true)",
		"through the broker's proxy -> 200 OK {\"app\":\"Demo API\",\"user\":\"demo-user\"} (the app got the key: true",
		"ListAccessEvents -> GetCredential ACCESS_DECISION_ALLOWED",
		"ListAccessEvents -> ProxyRequest ACCESS_DECISION_ALLOWED",
		"the demo's job token (job demo-job-1 of recipe demo-recipe, valid until ",
		// The binary running, whose exit codes are the CLI's own.
		"  ./.bin/" + filepath.Base(binDir) + "/hub connections list --workspace demo",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("hub dev printed no %q:\n%s", want, out)
		}
	}

	// Paste the exports and commands it printed, in order, into bash.
	var script []string
	for _, l := range printed {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "export ") || strings.HasPrefix(l, "go run ") || strings.HasPrefix(l, "curl ") || strings.HasPrefix(l, "./.bin/") {
			script = append(script, l)
		}
	}
	if len(script) < 10 {
		t.Fatalf("hub dev printed only %d commands:\n%s", len(script), out)
	}
	shCtx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // go run builds the first time
	defer cancel()
	sh := exec.CommandContext(shCtx, "bash", "-euo", "pipefail", "-c", strings.Join(script, "\n"))
	sh.Dir = root
	sh.WaitDelay = 10 * time.Second // bash's children may hold its output open
	sh.Env = os.Environ()
	got, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("the printed commands failed: %v\n%s\n--- commands:\n%s", err, got, strings.Join(script, "\n"))
	}
	// The app's answer three times: curl through the proxy, the SDK worker
	// with the key put on by the SDK, and through the proxy.
	if n := strings.Count(string(got), `"user":"demo-user"`); n != 3 {
		t.Errorf("the app answered %d of the 3 calls; the commands printed:\n%s", n, got)
	}

	// Ctrl-C stops it cleanly.
	if err := dev.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("hub dev after Ctrl-C: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Error("hub dev did not stop within 30 s of Ctrl-C")
	}
}
