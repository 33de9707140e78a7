package childproc

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// When run as the helper parent, the test binary starts a tied `sleep`,
// prints its pid and waits to be killed.
func TestMain(m *testing.M) {
	if os.Getenv("CHILDPROC_PARENT") == "1" {
		cmd := exec.Command("sleep", "300")
		if os.Getenv("CHILDPROC_TIE") == "1" {
			Tie(cmd)
		}
		if err := cmd.Start(); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(strconv.Itoa(cmd.Process.Pid) + "\n")
		select {}
	}
	os.Exit(m.Run())
}

// A tied child dies with its parent killed by -9; an untied one (the
// mutation) outlives it.
func TestTiedChildDiesWithParent(t *testing.T) {
	for _, tc := range []struct {
		tie, wantDead bool
	}{{true, true}, {false, false}} {
		parent := exec.Command(os.Args[0], "-test.run=^$")
		parent.Env = append(os.Environ(), "CHILDPROC_PARENT=1", "CHILDPROC_TIE="+map[bool]string{true: "1"}[tc.tie])
		out, err := parent.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := parent.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			_ = parent.Process.Kill()
			t.Fatalf("helper parent: %v", err)
		}
		child, _ := strconv.Atoi(strings.TrimSpace(line))
		t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
		_ = parent.Process.Kill()
		_ = parent.Wait()

		deadline := time.Now().Add(10 * time.Second)
		for alive(child) && tc.wantDead && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // polling the kernel's process table, bounded by the deadline
		}
		if got := !alive(child); got != tc.wantDead {
			t.Errorf("tie=%v: child dead after the parent's kill = %v, want %v", tc.tie, got, tc.wantDead)
		}
	}
}

// alive reports whether pid runs (a zombie waiting to be reaped does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
