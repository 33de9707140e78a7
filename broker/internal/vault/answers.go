package vault

import (
	"bytes"
	"io"
	"net/http"
)

// answers normalises what a Vault node answers during a leader change, so
// that nothing above it mistakes a node in transition for an answer about
// the data. Vault's Go client reads every 404 as "nothing stored there" (a
// read returns no secret, a list returns no keys) and every 3xx as success
// with an empty body (no secret), so without this a failover looks like
// every secret vanished: GetCredential answers NotFound, and a reconciler
// would think every connection lost its secret.
//
//   - A standby answers 307 with the active node's address: the request is
//     sent there as it is (not through the node list, which would send it
//     back to the standby), up to maxRedirects times; a node that still
//     redirects is 503.
//   - A node that has just become active answers 404 "no handler for route"
//     for a mount it has not set up yet: 503. A real miss has an empty error
//     list and passes through unchanged.
type answers struct {
	next   http.RoundTripper // the node list (failover), or the one node
	direct http.RoundTripper // sends a request where its URL says
}

// routeMissing is the start of Vault's error for a path no mount serves.
var routeMissing = []byte("no handler for route")

const (
	// maxNotFoundBody bounds how much of a 404's body is read to classify
	// it; Vault's error bodies are a few hundred bytes.
	maxNotFoundBody = 64 << 10
	// maxRedirects is how often a request follows a standby's redirect.
	maxRedirects = 2
)

func (a answers) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := a.next.RoundTrip(req)
	for hops := 0; err == nil && isRedirect(resp.StatusCode); hops++ {
		loc, lerr := resp.Location()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxNotFoundBody))
		_ = resp.Body.Close()
		if lerr != nil || hops == maxRedirects || (req.Body != nil && req.GetBody == nil) {
			return unavailable(req, "redirected by a standby Vault node, and the active node could not be reached"), nil
		}
		r := req.Clone(req.Context())
		r.URL, r.Host = loc, ""
		if req.GetBody != nil {
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		resp, err = a.direct.RoundTrip(r)
	}
	if err != nil || resp.StatusCode != http.StatusNotFound {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxNotFoundBody))
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if bytes.Contains(body, routeMissing) {
		return unavailable(req, "the KV mount is not served yet (a Vault node becoming active)"), nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

func isRedirect(code int) bool {
	return code == http.StatusTemporaryRedirect || code == http.StatusPermanentRedirect ||
		code == http.StatusMovedPermanently || code == http.StatusFound || code == http.StatusSeeOther
}

// unavailable is a 503 answer in Vault's error format.
func unavailable(req *http.Request, why string) *http.Response {
	body := []byte(`{"errors":["` + why + `"]}`)
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: req,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
}
