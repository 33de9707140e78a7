package api

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/validtext"
	"google.golang.org/grpc/status"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>{{.Title}}</h1><p>{{.Body}}</p><p>{{.Next}}</p></body></html>`))

type pageData struct{ Title, Body, Next string }

func render(w http.ResponseWriter, code int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer") // the URL carries the code
	w.WriteHeader(code)
	_ = page.Execute(w, d)
}

const startAgain = "Go back to the connection and start the authorization again."

// refusedAuthorization ends a callback whose exchange with the app (what)
// failed: nothing was changed, and the person may start again.
func (s *Server) refusedAuthorization(ctx context.Context, w http.ResponseWriter, r *http.Request, a *store.AuthState, what string, err error) {
	s.logger.WarnContext(ctx, "oauth callback: "+what+" failed", "connection_id", a.ConnectionID, "err", err)
	s.answer(w, r, a, a.ConnectionID, http.StatusBadGateway, pageData{"Authorization failed",
		"The app did not accept the authorization. Nothing was changed.", startAgain}, "failed")
}

// answer ends a callback whose state was consumed: with a page that says
// how it went, or, when the authorization was started with a return URL,
// by sending the browser back there with connection_id, outcome
// (connected, connected_not_bound, denied, failed) and, unless connected,
// error (the page's sentence) added to its query.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, a *store.AuthState, connID string, code int, d pageData, outcome string) {
	u, err := url.Parse(a.ReturnURL)
	if a.ReturnURL == "" || err != nil {
		render(w, code, d)
		return
	}
	q := u.Query()
	q.Set("connection_id", connID)
	q.Set("outcome", outcome)
	if outcome != "connected" {
		q.Set("error", truncate(validtext.Clean(d.Body), 300))
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer") // the callback's URL carries the code
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// OAuthCallback serves the OAuth 2.0 redirect. The state is consumed first,
// whatever happens next, so that it can never be used twice. Refusals leave
// the connection as it was and show a page that says what to do.
func (s *Server) OAuthCallback(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" || len(state) > 200 {
		render(w, http.StatusBadRequest, pageData{"Authorization failed", "The request has no valid state.", startAgain})
		return
	}
	a, err := s.store.ConsumeAuthState(ctx, hashState(state), time.Now())
	if errors.Is(err, store.ErrNotFound) {
		render(w, http.StatusBadRequest, pageData{"Authorization failed",
			"This authorization link was already used, has expired, or was not issued by us.", startAgain})
		return
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "oauth callback: consume state", "err", err)
		render(w, http.StatusInternalServerError, pageData{"Authorization failed", "Something went wrong on our side.", startAgain})
		return
	}
	c, err := s.store.Get(ctx, a.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		s.answer(w, r, a, a.ConnectionID, http.StatusGone, pageData{"Authorization failed", "The connection was deleted after the authorization started.",
			"Create the connection again."}, "failed")
		return
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "oauth callback: load connection", "err", err)
		s.answer(w, r, a, a.ConnectionID, http.StatusInternalServerError, pageData{"Authorization failed", "Something went wrong on our side.", startAgain}, "failed")
		return
	}
	if e := q.Get("error"); e != "" {
		s.answer(w, r, a, a.ConnectionID, http.StatusBadRequest, pageData{"Authorization was not granted",
			fmt.Sprintf("%s said: %s %s", c.Connector, e, q.Get("error_description")), startAgain}, "denied")
		return
	}
	if q.Get("oauth_verifier") != "" {
		s.completeOAuth1(ctx, w, r, a, c, q.Get("oauth_token"), q.Get("oauth_verifier"))
		return
	}
	code := q.Get("code")
	if code == "" {
		s.answer(w, r, a, a.ConnectionID, http.StatusBadRequest, pageData{"Authorization failed", "The app sent no authorization code.", startAgain}, "failed")
		return
	}
	conn, ok := s.catalog.Get(c.Connector)
	if !ok || conn.OAuth2 == nil {
		s.answer(w, r, a, a.ConnectionID, http.StatusInternalServerError, pageData{"Authorization failed", "This app is no longer in the catalog.", ""}, "failed")
		return
	}
	cfg := s.oauthConfig(conn, c, "", nil)
	// The live registration now: a secret rotated since StartAuthorization
	// (same client id) is the one to use; a client id replaced meanwhile
	// makes the app refuse the code, and the user starts again.
	client, err := s.store.OAuthClient(ctx, c.Connector, c.WorkspaceID, true)
	if err != nil {
		s.logger.WarnContext(ctx, "oauth callback: no OAuth client", "connection_id", c.ID, "err", err)
		s.answer(w, r, a, a.ConnectionID, http.StatusBadGateway, pageData{"Authorization failed",
			"No OAuth client is registered for this app any more. Nothing was changed.", startAgain}, "failed")
		return
	}
	verifier := ""
	if conn.OAuth2.PKCE {
		verifier = s.verifier(state)
	}
	// The tokens become a new secret generation, live only once activate
	// commits it (docs/write-protocol.md).
	wr, err := s.beginWrite(ctx, c.ID, s.writeTimeout)
	if err != nil {
		s.logger.ErrorContext(ctx, "oauth callback: write intent", "connection_id", c.ID, "err", err)
		s.answer(w, r, a, a.ConnectionID, http.StatusInternalServerError, pageData{"Authorization failed", "Something went wrong on our side.", startAgain}, "failed")
		return
	}
	bctx, bcancel := s.brokerCtx(ctx)
	resp, err := s.broker.ExchangeAuthorizationCode(bctx, &brokerv1.ExchangeAuthorizationCodeRequest{
		ConnectionId: c.ID, WorkspaceId: c.WorkspaceID, Connector: c.Connector, Instance: c.Instance.Proto(),
		Endpoint: &brokerv1.OAuth2Endpoint{TokenUrl: cfg.Endpoint.TokenURL, IdentityUrl: identityURL(conn, c),
			TokenAuthStyle: conn.OAuth2.TokenAuthStyle},
		AllowedHosts: conn.HostsFor(c.Instance.Proto()), TestRequest: testRequest(conn, c, c.Instance.Proto()),
		Code: code, RedirectUri: a.RedirectURI, CodeVerifier: verifier, SecretGeneration: wr.key.Generation,
		Client: clientRef(client), PrivateNetwork: conn.PrivateNetwork, BaseUrl: baseURLOf(conn, c.Instance),
	})
	bcancel()
	if err == nil {
		err = s.afterBroker(ctx, wr)
	} else {
		s.abort(ctx, wr, true)
	}
	if err != nil {
		s.refusedAuthorization(ctx, w, r, a, "code exchange", err)
		return
	}
	var expires time.Time
	if e := resp.GetAccessTokenExpireTime(); e != nil {
		expires = e.AsTime()
	}
	s.activate(ctx, w, r, a, c, wr, resp.GetAuthorizedAs(), resp.GetGrantedScopes(), expires)
}

// completeOAuth1 finishes an OAuth 1.0a authorization through the broker.
func (s *Server) completeOAuth1(ctx context.Context, w http.ResponseWriter, r *http.Request, a *store.AuthState, c *store.Connection, token, verifier string) {
	conn, ok := s.catalog.Get(c.Connector)
	if !ok {
		s.answer(w, r, a, a.ConnectionID, http.StatusInternalServerError, pageData{"Authorization failed", "This app is no longer in the catalog.", ""}, "failed")
		return
	}
	// The pending authorization sits in its own generation (StartAuthorization
	// wrote its intent, which lasts as long as the state); the access token
	// goes there, and activate makes it live.
	var wr *write
	if a.SecretGeneration != "" {
		wr = &write{key: store.SecretKey{ConnectionID: c.ID, Generation: a.SecretGeneration}}
	}
	client, err := s.store.OAuthClient(ctx, c.Connector, c.WorkspaceID, true)
	if err != nil {
		s.abort(ctx, wr, true)
		s.logger.WarnContext(ctx, "oauth callback: no OAuth client", "connection_id", c.ID, "err", err)
		s.answer(w, r, a, a.ConnectionID, http.StatusBadGateway, pageData{"Authorization failed",
			"No OAuth client is registered for this app any more. Nothing was changed.", startAgain}, "failed")
		return
	}
	bctx, bcancel := s.brokerCtx(ctx)
	resp, err := s.broker.CompleteOAuth1(bctx, &brokerv1.CompleteOAuth1Request{ConnectionId: c.ID, RequestToken: token,
		Verifier: verifier, IdentityUrl: identityURL(conn, c), SecretGeneration: a.SecretGeneration, Client: clientRef(client)})
	bcancel()
	if err == nil && wr != nil {
		err = s.afterBroker(ctx, wr)
	} else if err != nil {
		s.abort(ctx, wr, true)
	}
	if err != nil {
		s.refusedAuthorization(ctx, w, r, a, "OAuth 1.0a completion", err)
		return
	}
	s.activate(ctx, w, r, a, c, wr, resp.GetAuthorizedAs(), nil, time.Time{})
}

// activate records a successful authorization and says so.
//
// For OAuth 2.0, tokenExpiry is when the first access token expires (zero:
// the app did not say); the token's time is recorded beside the connection.
func (s *Server) activate(ctx context.Context, w http.ResponseWriter, r *http.Request, a *store.AuthState, c *store.Connection, wr *write, who string,
	scopes []string, tokenExpiry time.Time) {
	previous := ""
	_, err := s.store.Update(ctx, a.Subject, c.ID, 0, func(c *store.Connection) error {
		if wr != nil {
			previous, c.SecretGeneration = c.SecretGeneration, wr.key.Generation
		}
		c.Status, c.StatusReason, c.LastError = store.StatusActive, "", ""
		for i := range scopes {
			scopes[i] = validtext.Clean(scopes[i])
		}
		c.AuthorizedAs, c.GrantedScopes, c.LastVerifyTime = validtext.Clean(who), scopes, time.Now().UTC()
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		s.abortAfter(ctx, wr, err)
		s.answer(w, r, a, a.ConnectionID, http.StatusGone, pageData{"Authorization failed", "The connection was deleted after the authorization started.",
			"Create the connection again."}, "failed")
		return
	}
	if err != nil {
		s.abortAfter(ctx, wr, err)
		s.logger.ErrorContext(ctx, "oauth callback: activate", "connection_id", c.ID, "err", err)
		s.answer(w, r, a, a.ConnectionID, http.StatusInternalServerError, pageData{"Authorization failed", "Something went wrong on our side.", startAgain}, "failed")
		return
	}
	if wr != nil {
		s.committed(ctx, c.ID, previous)
	}
	if authTypes.of(c.AuthType) == credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE {
		// Best effort: the broker's next refresh reports it again.
		if err := s.store.RecordRefresh(ctx, c.ID, time.Now().UTC(), tokenExpiry); err != nil {
			s.logger.WarnContext(ctx, "oauth callback: record the token's time", "connection_id", c.ID, "err", err)
		}
	}
	if who == "" {
		who = "the account you chose"
	}
	d, outcome := pageData{"Connected", fmt.Sprintf("%s is connected as %s.", c.Name, who), "You can close this window."}, "connected"
	if a.BindRecipeID != "" {
		// The recipe editor's flow: the authorized connection goes into the
		// step it was started for, under BindConnection's rules. A refused
		// bind leaves the connection connected, and says why.
		b := store.Binding{RecipeID: a.BindRecipeID, Step: a.BindStep, ConnectionID: c.ID}
		if err := s.store.Bind(ctx, a.Subject, b, s.bindingRules); err != nil {
			outcome = "connected_not_bound"
			d.Body += fmt.Sprintf(" It was not put into recipe %s step %s: %s", b.RecipeID, b.Step, status.Convert(s.toStatus(ctx, err)).Message())
		}
	}
	s.answer(w, r, a, c.ID, http.StatusOK, d, outcome)
}
