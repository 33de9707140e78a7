package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"google.golang.org/grpc/codes"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/appanswer"
	"github.com/integrationhub/connections/internal/validtext"

	"github.com/integrationhub/connections/broker/internal/oauth"
	"github.com/integrationhub/connections/broker/internal/vault"
	"github.com/integrationhub/connections/internal/egress"
)

// TestCredential sends a connection's test request with its credential and
// classifies the answer.
func (s *AdminServer) TestCredential(ctx context.Context, req *brokerv1.TestCredentialRequest) (*brokerv1.TestCredentialResponse, error) {
	key := vault.Key(req.GetConnectionId(), req.GetSecretGeneration())
	rec, _, err := s.secrets.Get(ctx, key)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("TestCredential: %w", err))
	}
	// The test request goes only to the connection's own hosts, and so does
	// a refresh token.
	if err := checkHost(rec, req.GetUrl(), "test request"); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("TestCredential: %w", err))
	}
	if rec.OAuth2 != nil && rec.OAuth2.TokenURL != "" {
		if err := checkHost(rec, rec.OAuth2.TokenURL, "token endpoint"); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("TestCredential: %w", err))
		}
	}
	if rec.OAuth2 != nil {
		if req.GetRefresh() && rec.OAuth2.RefreshToken != "" && rec.OAuth2.Invalid == "" {
			// A new access token now (unless another caller replaced this
			// one meanwhile), spending the refresh token before the app's
			// idle expiry can.
			rec, err = s.oauth.Replace(ctx, key, rec.OAuth2.AccessToken)
		} else {
			rec, err = s.oauth.Fresh(ctx, key, rec)
		}
		switch {
		case errors.Is(err, oauth.ErrRevoked):
			return outcome(brokerv1.TestOutcome_TEST_OUTCOME_REVOKED, 0, "the app refused the refresh token (invalid_grant)"), nil
		case errors.Is(err, oauth.ErrProviderUnavailable):
			return outcome(brokerv1.TestOutcome_TEST_OUTCOME_PROVIDER_UNREACHABLE, 0, "the app's token endpoint is unavailable"), nil
		case err != nil:
			return nil, s.toStatus(ctx, fmt.Errorf("TestCredential: %w", err))
		}
	}
	res, err := s.probe(ctx, rec, req.GetMethod(), req.GetUrl())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("TestCredential: %w", err))
	}
	return res, nil
}

// probe sends a test request with rec's credential and classifies the
// answer. The caller has checked the URL against rec's hosts.
func (s *core) probe(ctx context.Context, rec vault.Record, method, rawURL string) (*brokerv1.TestCredentialResponse, error) {
	hreq, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, errMismatch
	}
	if rec.OAuth1 != nil {
		// OAuth 1.0a signs each request; there is no token to attach.
		h, err := s.oauth1.Sign(ctx, rec, method, rawURL, nil)
		if err != nil {
			return nil, err
		}
		hreq.Header.Set("Authorization", h)
	} else {
		authorize(hreq, rec)
	}
	host := hostOf(rawURL)
	resp, err := s.apps.Client(rec.PrivateNetwork, s.http.Timeout).Do(hreq)
	if errors.Is(err, egress.ErrPrivateAddress) {
		return nil, refuse(codes.PermissionDenied, "%s is on a private network, which this connector does not allow", host)
	}
	if err != nil {
		return outcome(brokerv1.TestOutcome_TEST_OUTCOME_PROVIDER_UNREACHABLE, 0, "could not reach "+host), nil
	}
	defer resp.Body.Close()
	code := int32(resp.StatusCode)
	switch o := appanswer.Outcome(resp.StatusCode); o {
	case brokerv1.TestOutcome_TEST_OUTCOME_OK:
		r := outcome(o, code, host+" accepted the credentials")
		r.AuthorizedAs = validtext.Clean(oauth.Identity(resp.Body))
		return r, nil
	case brokerv1.TestOutcome_TEST_OUTCOME_INVALID_CREDENTIALS, brokerv1.TestOutcome_TEST_OUTCOME_INSUFFICIENT_PERMISSIONS:
		return outcome(o, code, fmt.Sprintf("%s answered %d %s: %s", host, resp.StatusCode, http.StatusText(resp.StatusCode), appanswer.Meaning(o))), nil
	default:
		return outcome(o, code, fmt.Sprintf("%s answered %s", host, resp.Status)), nil
	}
}

func outcome(o brokerv1.TestOutcome, code int32, detail string) *brokerv1.TestCredentialResponse {
	// The detail quotes the app (its status line): text it chose.
	return &brokerv1.TestCredentialResponse{Outcome: o, HttpStatus: code, Detail: validtext.Clean(detail)}
}

// credentialOn says where rec's credential goes on a request, as its
// placement says (the same placement GetCredential hands workers): in a
// header, or for an API key placed in the query, a query parameter. It is
// the one rule for test requests (authorize) and the egress proxy.
func credentialOn(rec vault.Record) placed {
	p := placementOf(rec)
	switch {
	case rec.Basic != nil:
		return placed{header: "Authorization",
			value: "Basic " + base64.StdEncoding.EncodeToString([]byte(rec.Basic.Username+":"+rec.Basic.Password))}
	case rec.OAuth2 != nil:
		return placed{header: "Authorization", value: "Bearer " + rec.OAuth2.AccessToken}
	case rec.APIKey != nil && p.GetKind() == credentialv1.PlacementKind_PLACEMENT_KIND_HEADER:
		return placed{header: p.GetName(), value: p.GetPrefix() + rec.APIKey.Key}
	case rec.APIKey != nil && p.GetKind() == credentialv1.PlacementKind_PLACEMENT_KIND_QUERY_PARAMETER:
		return placed{query: p.GetName(), value: rec.APIKey.Key}
	case rec.APIKey != nil:
		return placed{header: "Authorization", value: "Bearer " + rec.APIKey.Key}
	}
	return placed{}
}

// placed is a credential's place on a request: a header or a query
// parameter (one of the names is set), and its value.
type placed struct{ header, query, value string }

// authorize puts rec's credential on r (credentialOn).
func authorize(r *http.Request, rec vault.Record) {
	switch c := credentialOn(rec); {
	case c.query != "":
		q := r.URL.Query()
		q.Set(c.query, c.value)
		r.URL.RawQuery = q.Encode()
	case c.header != "":
		r.Header.Set(c.header, c.value)
	}
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return "the app"
}
