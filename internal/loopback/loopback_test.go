package loopback

import (
	"net"
	"strconv"
	"testing"
)

// The addresses are distinct, bindable, and below the ephemeral range.
func TestFreeAddrs(t *testing.T) {
	addrs, err := FreeAddrs(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Errorf("%s handed out twice", a)
		}
		seen[a] = true
		_, p, _ := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		if start := ephemeralStart(); start-10000 >= 1000 && (port < 10000 || port >= start) {
			t.Errorf("%s is not below the ephemeral range (from %d)", a, start)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s cannot be bound: %v", a, err)
			continue
		}
		l.Close()
	}
}
