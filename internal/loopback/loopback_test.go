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

// Separate calls never hand out the same address: a test that asks once per
// listener gets distinct ones (2,000 draws from the ~39,000 ports below the
// ephemeral range would repeat dozens of times otherwise).
func TestFreeAddrsAcrossCalls(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		a, err := FreeAddrs(1)
		if err != nil {
			t.Fatal(err)
		}
		if seen[a[0]] {
			t.Fatalf("%s handed out twice", a[0])
		}
		seen[a[0]] = true
	}
}
