// Package loopback hands out free TCP addresses on 127.0.0.1 for processes
// the local stack and the tests start.
package loopback

import (
	"fmt"
	"net"
)

// FreeAddrs returns n distinct free "127.0.0.1:port" addresses. The ports are
// released before returning, so another process could take one first; on a
// test machine's loopback that is rare enough to accept.
func FreeAddrs(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("loopback.FreeAddrs: %w", err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
