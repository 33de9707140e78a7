package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// -h prints each service's flags with their environment variables and
// exits 0: asking for help is not a failure a script should see.
func TestServiceHelp(t *testing.T) {
	for name, bin := range map[string]string{"connections": binaries.Connections, "broker": binaries.Broker} {
		out, err := exec.Command(bin, "-h").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-listen") || strings.Contains(string(out), "help requested") {
			t.Errorf("%s -h: %v\n%s", name, err, out)
		}
	}
}
