package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/grpc/metadata"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

func metadataWithBearer(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// ErrSigned means the credential is applied by the broker signing each
// request (OAuth 1.0a): send the request through HTTPClient or Transport.
var ErrSigned = errors.New("worker: this connection's requests are signed by the broker; use HTTPClient or Transport")

// CheckURL returns nil when the credential may be sent to u: an http or
// https URL whose host matches one of AllowedHosts (the broker's own rule),
// or, when the broker named no hosts, one with BaseURL's scheme and host.
// Otherwise it returns a *HostNotAllowedError.
func (cr *Credential) CheckURL(u *url.URL) error {
	host, ok := hostOf(u)
	refuse := func(detail string) error {
		return &HostNotAllowedError{ConnectionID: cr.ConnectionID, Host: host, Detail: detail}
	}
	switch {
	case !ok:
		return refuse(fmt.Sprintf("%q is not an http or https URL with a host (and no user information): connection %s's credential is not sent there; the request was not sent",
			u.Redacted(), cr.ConnectionID))
	case len(cr.AllowedHosts) > 0:
		if matchHost(cr.AllowedHosts, host) {
			return nil
		}
		return refuse(fmt.Sprintf("%s is not a host connection %s's credential may be sent to (its hosts: %s); the request was not sent",
			host, cr.ConnectionID, strings.Join(cr.AllowedHosts, ", ")))
	case cr.BaseURL != "":
		base, err := url.Parse(cr.BaseURL)
		if err == nil && strings.EqualFold(u.Scheme, base.Scheme) && host == strings.ToLower(base.Host) {
			return nil
		}
		return refuse(fmt.Sprintf("%s is not where connection %s's credential may be sent (the broker named no hosts for it, so only its base URL %s); the request was not sent",
			host, cr.ConnectionID, cr.BaseURL))
	}
	return refuse(fmt.Sprintf("the broker named neither hosts nor a base URL for connection %s's credential, so it is sent nowhere; the request to %s was not sent",
		cr.ConnectionID, host))
}

// Apply puts the credential on r as the connector wants it. It refuses (a
// *HostNotAllowedError, r unchanged) a request whose URL the credential may
// not be sent to (see CheckURL).
func (cr *Credential) Apply(r *http.Request) error {
	m := cr.material
	p := cr.Placement
	if p.GetKind() == credentialv1.PlacementKind_PLACEMENT_KIND_SIGNED || cr.AuthType == credentialv1.AuthType_AUTH_TYPE_OAUTH1 {
		return ErrSigned // the broker checks the URL when it signs
	}
	if err := cr.CheckURL(r.URL); err != nil {
		return err
	}
	switch {
	case m.GetBasic() != nil:
		r.SetBasicAuth(m.GetBasic().GetUsername(), m.GetBasic().GetPassword())
	case m.GetOauth2() != nil:
		typ := m.GetOauth2().GetTokenType()
		if typ == "" || strings.EqualFold(typ, "bearer") {
			typ = "Bearer"
		}
		r.Header.Set("Authorization", typ+" "+m.GetOauth2().GetAccessToken())
	case m.GetApiKey() != nil:
		key := m.GetApiKey().GetKey()
		switch p.GetKind() {
		case credentialv1.PlacementKind_PLACEMENT_KIND_HEADER:
			r.Header.Set(p.GetName(), p.GetPrefix()+key)
		case credentialv1.PlacementKind_PLACEMENT_KIND_QUERY_PARAMETER:
			q := r.URL.Query()
			q.Set(p.GetName(), key)
			r.URL.RawQuery = q.Encode()
		default:
			r.Header.Set("Authorization", "Bearer "+key)
		}
	default:
		return fmt.Errorf("worker: the credential of connection %s has no material this SDK can apply", cr.ConnectionID)
	}
	return nil
}

// HTTPClient returns an HTTP client whose requests carry connectionID's
// credential (see Transport). It follows a redirect only to the scheme and
// host of the request it sent; a redirect anywhere else is returned as the
// response, as the egress proxy does, and the credential does not go there.
func (c *Client) HTTPClient(connectionID string) *http.Client {
	return &http.Client{Transport: c.Transport(connectionID, nil), CheckRedirect: sameHostRedirects}
}

// sameHostRedirects follows up to 10 redirects that keep to the first
// request's scheme and host.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if first := via[0].URL; req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		return http.ErrUseLastResponse
	}
	return nil
}

// Transport returns a RoundTripper (over base, default
// http.DefaultTransport) that puts connectionID's credential on each
// request. A request whose URL the credential may not be sent to (see
// Credential.CheckURL; for OAuth 1.0a the broker decides when it signs) is
// not sent: the RoundTripper returns a *HostNotAllowedError, also for a
// redirect an http.Client follows to such a host. When the app answers 401 it reports the failure to the broker
// and, if the broker hands out another credential and the request body can
// be sent again (no body, or GetBody set, as http.NewRequest does for
// in-memory bodies), sends the request once more with it. A 403 is reported
// and returned. A report the broker could not act on is not an error of the
// request: the app's answer is returned as it is.
func (c *Client) Transport(connectionID string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, id: connectionID, base: base}
}

type transport struct {
	c    *Client
	id   string
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	cr, err := t.c.Credential(ctx, t.id)
	if errors.Is(err, ErrSigned) {
		// OAuth 1.0a: the broker signs each request; nothing to cache.
		cr, err = &Credential{ConnectionID: t.id, AuthType: credentialv1.AuthType_AUTH_TYPE_OAUTH1,
			Placement: &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_SIGNED}}, nil
	}
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.send(ctx, req, cr, false)
	if err != nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) {
		return resp, err
	}
	next, rerr := t.c.report(ctx, t.id, cr, resp.StatusCode)
	if rerr != nil || next == nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, nil
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil // the body cannot be sent again
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return t.send(ctx, req, next, true)
}

// send sends a copy of req with cr on it (a fresh body when retrying).
func (t *transport) send(ctx context.Context, req *http.Request, cr *Credential, retry bool) (*http.Response, error) {
	out := req.Clone(ctx)
	if retry && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		out.Body = body
	}
	if err := cr.Apply(out); errors.Is(err, ErrSigned) {
		if err := t.c.sign(ctx, t.id, out); err != nil {
			closeBody(out)
			return nil, err
		}
	} else if err != nil {
		closeBody(out) // nothing was sent
		return nil, err
	}
	resp, err := t.base.RoundTrip(out)
	if err != nil && ctx.Err() == nil {
		// The caller did not give up: the app failed.
		return nil, &AppUnavailableError{ConnectionID: t.id, Detail: "the app could not be reached: " + err.Error(),
			Timeout: isTimeout(err), Err: err}
	}
	return resp, err
}

// sign has the broker sign r (OAuth 1.0a). A form body is read to be signed
// too, and put back.
func (c *Client) sign(ctx context.Context, connectionID string, r *http.Request) error {
	form := map[string]string{}
	if r.Body != nil && r.Body != http.NoBody && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		vals, err := url.ParseQuery(string(b))
		if err != nil {
			return fmt.Errorf("worker: form body: %w", err)
		}
		for k, v := range vals {
			if len(v) > 0 {
				form[k] = v[0]
			}
		}
	}
	ctx, err := c.token.attach(ctx)
	if err != nil {
		return err
	}
	resp, err := c.broker.SignRequest(ctx, &brokerv1.SignRequestRequest{ConnectionId: connectionID, Method: r.Method,
		Url: r.URL.String(), Form: form})
	if err != nil {
		return fromStatus(connectionID, err)
	}
	r.Header.Set("Authorization", resp.GetAuthorization())
	return nil
}

// report tells the broker the app refused cr with status (401 or 403) and
// returns the credential to retry with, if the broker has another one.
func (c *Client) report(ctx context.Context, connectionID string, cr *Credential, status int) (*Credential, error) {
	c.forget(connectionID)
	ctx, err := c.token.attach(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.broker.ReportCredentialFailure(ctx, &brokerv1.ReportCredentialFailureRequest{ConnectionId: cr.ConnectionID,
		HttpStatus: int32(status), FailedAccessToken: cr.material.GetOauth2().GetAccessToken()})
	if err != nil {
		return nil, fromStatus(connectionID, err)
	}
	if resp.GetCredential() == nil {
		return nil, nil
	}
	next := credentialOf(cr.ConnectionID, cr.Connector, cr.RuntimeUser, cr.BaseURL, cr.AllowedHosts, cr.Placement, resp.GetCredential())
	next.fetched = c.now()
	c.keep(connectionID, next)
	return next, nil
}

// isTimeout reports whether a transport error is a timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
