package api

import (
	"errors"
	"fmt"
	"net/url"
	"slices"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	"github.com/integrationhub/connections/internal/hosts"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// hostError refuses to send a credential somewhere its connection does not
// point: a credential goes only to the hosts stored with it.
type hostError struct {
	what, host string // e.g. "test request", "api.evil.test"
	unbound    bool   // the record predates host binding
}

func (e *hostError) Error() string {
	if e.unbound {
		return fmt.Sprintf("%s: this connection's credential was stored without the hosts it may be sent to; enter its secret again or re-authorize it", e.what)
	}
	return fmt.Sprintf("%s: %s is not a host this connection's credential may be sent to", e.what, e.host)
}

// GRPCStatus is PermissionDenied with the reason in an ErrorInfo.
func (e *hostError) GRPCStatus() *status.Status {
	st := status.New(codes.PermissionDenied, e.Error())
	if ds, err := st.WithDetails(&errdetails.ErrorInfo{Reason: "HOST_NOT_ALLOWED", Domain: "integrationhub.broker",
		Metadata: map[string]string{"host": e.host}}); err == nil {
		return ds
	}
	return st
}

// checkHost refuses rawURL unless its host is one rec's credential may be
// sent to (hosts.Allow; a record without hosts is refused). what names the
// request for the error.
func checkHost(rec vault.Record, rawURL, what string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		u = &url.URL{} // refused below as not an http or https URL
	}
	return checkHostURL(rec, u, what)
}

// checkHostURL is checkHost for a URL already parsed.
func checkHostURL(rec vault.Record, u *url.URL, what string) error {
	err := hosts.AllowURL(rec.AllowedHosts, u)
	var na *hosts.NotAllowedError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hosts.ErrUnbound):
		h, herr := hosts.OfURL(u)
		if herr != nil {
			h = "(not an http or https URL)"
		}
		return &hostError{what: what, host: h, unbound: true}
	case errors.As(err, &na):
		return &hostError{what: what, host: na.Host}
	}
	return err
}

// checkHosts refuses any of urls (empty ones skipped) outside allowed, before
// a record holding them exists.
func checkHosts(allowed []string, what string, urls ...string) error {
	rec := vault.Record{AllowedHosts: allowed}
	for _, u := range slices.DeleteFunc(slices.Clone(urls), func(u string) bool { return u == "" }) {
		if err := checkHost(rec, u, what); err != nil {
			return err
		}
	}
	return nil
}

// sameHosts reports whether a and b allow the same hosts.
func sameHosts(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// errRebind refuses to move a stored secret to other hosts without the
// secret itself.
var errRebind = errors.New("changing where a connection points (base_url, subdomain, org, sandbox) needs its secret again in the same change")

// rebind refuses an attributes-only write (no new secret) that would let the
// stored credential go to hosts it was not stored for.
func rebind(old, next vault.Record) error {
	if len(old.AllowedHosts) == 0 && old.Instance == next.Instance {
		return nil // a record from before hosts were bound gets its instance's hosts
	}
	if !sameHosts(old.AllowedHosts, next.AllowedHosts) || old.Instance != next.Instance {
		return errRebind
	}
	return nil
}

func testFromProto(t *brokerv1.TestRequest) *vault.TestRequest {
	if t.GetUrl() == "" {
		return nil
	}
	return &vault.TestRequest{Method: t.GetMethod(), URL: t.GetUrl()}
}
