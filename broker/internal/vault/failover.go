package vault

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// failover sends each request to one node of a Vault cluster, moving to the
// next node when the current one cannot be reached. Any node serves: a
// standby forwards requests to the active node. A request is sent again to
// the next node only when the connection could not even be made (so it was
// never sent); a request that failed after it was sent is returned as it
// failed (a write may have landed), and later requests go to the next node.
//
// A single address that follows the leader (vault-helm's vault-active
// Service) is better still; the node list is for clusters without one.
type failover struct {
	next  http.RoundTripper
	nodes []*url.URL
	cur   atomic.Int64
}

// parseAddrs splits a comma-separated list of Vault addresses.
func parseAddrs(s string) ([]*url.URL, error) {
	var nodes []*url.URL
	for a := range strings.SplitSeq(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		u, err := url.Parse(a)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("vault address %q: want scheme://host:port", a)
		}
		nodes = append(nodes, u)
	}
	if len(nodes) == 0 {
		return nil, errors.New("no vault address")
	}
	return nodes, nil
}

func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	var lastErr error
	for range f.nodes {
		i := f.cur.Load()
		node := f.nodes[int(i)%len(f.nodes)]
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = node.Scheme, node.Host, ""
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		resp, err := f.next.RoundTrip(r)
		if err == nil {
			if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				// Sealed, or a standby that knows no active node: try
				// another node next time.
				f.cur.CompareAndSwap(i, i+1)
			}
			return resp, nil
		}
		f.cur.CompareAndSwap(i, i+1)
		lastErr = err
		if !notSent(err) || req.Context().Err() != nil {
			return nil, err
		}
	}
	return nil, lastErr
}

// notSent reports whether a transport error happened before the request
// could be sent: the node refused or could not be dialled.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
