package vault

import (
	"bytes"
	"io"
	"net/http"
)

// unrouted turns Vault's "no handler for route" answer into 503. A node
// that has just become active (a leader change, an unseal) answers 404 for
// every path of a mount it has not finished setting up. Vault's Go client
// reads any 404 as "nothing stored there" (a read returns no secret, a list
// returns no keys), so without this a failover looks like every secret
// vanished: GetCredential answers NotFound and a reconciler would think
// every connection lost its secret. A real miss has an empty error list and
// passes through unchanged.
type unrouted struct{ next http.RoundTripper }

// routeMissing is the start of Vault's error for a path no mount serves.
var routeMissing = []byte("no handler for route")

// maxNotFoundBody bounds how much of a 404's body is read to classify it;
// Vault's error bodies are a few hundred bytes.
const maxNotFoundBody = 64 << 10

func (u unrouted) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := u.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusNotFound {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxNotFoundBody))
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	if bytes.Contains(body, routeMissing) {
		resp.StatusCode, resp.Status = http.StatusServiceUnavailable, "503 Service Unavailable (mount not served yet)"
	}
	return resp, nil
}
