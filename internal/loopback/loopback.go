// Package loopback hands out free TCP addresses on 127.0.0.1 for processes
// the local stack and the tests start.
package loopback

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// FreeAddrs returns n distinct free "127.0.0.1:port" addresses, none of them
// handed out before by this process. The ports are released before
// returning, so another process could take one first; a later call in
// this process never hands out the same one, as a test that asks once per
// listener would otherwise give two listeners the same port now and then.
//
// They are drawn below the kernel's ephemeral port range (where it picks
// the source ports of outgoing connections and the ports of listeners on
// port 0): a port handed out there could be taken by any connection the
// machine makes before the process that was given it binds it, which two
// test runs side by side (kube-apiserver and etcd open many) made happen.
// Where the range leaves no room below it, port 0 is used.
func FreeAddrs(n int) ([]string, error) {
	lo, hi := 10000, ephemeralStart()
	addrs := make([]string, 0, n)
	givenMu.Lock()
	defer givenMu.Unlock()
	for tries := 0; len(addrs) < n; tries++ {
		if tries > 1000*n {
			return nil, fmt.Errorf("loopback.FreeAddrs: no free port found in %d tries", tries)
		}
		port := 0
		if hi-lo >= 1000 && tries < 100*n {
			port = lo + rand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			if port != 0 {
				continue // taken: draw again
			}
			return nil, fmt.Errorf("loopback.FreeAddrs: %w", err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		if !given[addr] {
			given[addr] = true
			addrs = append(addrs, addr)
		}
	}
	return addrs, nil
}

var (
	givenMu sync.Mutex
	given   = map[string]bool{} // every address FreeAddrs has handed out
)

// ephemeralStart is the first port of the kernel's ephemeral range (Linux;
// elsewhere, and when it cannot be read, the IANA range's 49152).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 49152
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 49152
	}
	p, err := strconv.Atoi(f[0])
	if err != nil {
		return 49152
	}
	return p
}
