package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/protobuf/types/known/timestamppb"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/privilege"
	"github.com/integrationhub/connections/internal/validtext"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// OAuthConfig is what the authorization flow needs beyond the catalog.
type OAuthConfig struct {
	// RedirectURL is the public URL of this service's callback.
	RedirectURL string
	// StateKey derives each authorization's PKCE verifier from its state,
	// so that no verifier is stored. Replicas must share it.
	StateKey []byte
	// StateTTL is how long a user has to complete an authorization.
	StateTTL time.Duration
}

// RegisterOAuthClient stores a client id here and its secret in Vault, by
// the write protocol: the secret goes to a new generation under a write
// intent, and the transaction that records the client id names it live; a
// refused or failed registration leaves the previous one in use.
func (s *Server) RegisterOAuthClient(ctx context.Context, req *connectionsv1.RegisterOAuthClientRequest) (*connectionsv1.RegisterOAuthClientResponse, error) {
	// The platform's own app (no workspace) needs a token for every workspace.
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	conn, ok := s.catalog.Get(req.GetConnector())
	if !ok || (conn.OAuth2 == nil && conn.OAuth1 == nil) {
		return nil, s.toStatus(ctx, invalid("connector", fmt.Sprintf("%q is not an OAuth app in the catalog", req.GetConnector())))
	}
	w, err := s.beginClientWrite(ctx, store.ClientKey{Connector: req.GetConnector(), WorkspaceID: req.GetWorkspaceId()})
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("RegisterOAuthClient: %w", err))
	}
	bctx, cancel := s.brokerCtx(ctx)
	_, err = s.broker.PutOAuthClient(bctx, &brokerv1.PutOAuthClientRequest{
		Connector: req.GetConnector(), WorkspaceId: req.GetWorkspaceId(),
		ClientId: req.GetClientId(), ClientSecret: req.GetClientSecret(), SecretGeneration: w.client.Generation,
	})
	cancel()
	if err != nil {
		s.abort(ctx, w, true)
		return nil, s.toStatus(ctx, brokerErr("RegisterOAuthClient", err))
	}
	if err := s.afterBroker(ctx, w); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("RegisterOAuthClient: %w", err))
	}
	previous, err := s.store.PutOAuthClient(ctx, authz.Actor(ctx), *w.client, req.GetClientId())
	if err != nil {
		s.abortAfter(ctx, w, err)
		return nil, s.toStatus(ctx, fmt.Errorf("RegisterOAuthClient: %w", err))
	}
	old := *w.client
	old.Generation = previous
	s.clientCommitted(ctx, old)
	return &connectionsv1.RegisterOAuthClientResponse{}, nil
}

// GetOAuthClient returns the live registration of exactly one connector and
// workspace (the broker's view: which client secret generation to use).
func (s *Server) GetOAuthClient(ctx context.Context, req *connectionsv1.GetOAuthClientRequest) (*connectionsv1.GetOAuthClientResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	c, err := s.store.OAuthClient(ctx, req.GetConnector(), req.GetWorkspaceId(), false)
	if err != nil {
		return nil, s.toStatus(ctx, missingClient(req.GetConnector(), err))
	}
	return &connectionsv1.GetOAuthClientResponse{OauthClient: clientToProto(c)}, nil
}

func clientToProto(c *store.OAuthClient) *connectionsv1.OAuthClient {
	return &connectionsv1.OAuthClient{Connector: c.Connector, WorkspaceId: c.WorkspaceID, ClientId: c.ClientID, SecretGeneration: c.Generation}
}

// clientRef names a registration's live generation for the broker.
func clientRef(c *store.OAuthClient) *brokerv1.OAuthClientRef {
	return &brokerv1.OAuthClientRef{WorkspaceId: c.WorkspaceID, SecretGeneration: c.Generation}
}

// StartAuthorization issues the URL that starts (or restarts) the OAuth flow.
func (s *Server) StartAuthorization(ctx context.Context, req *connectionsv1.StartAuthorizationRequest) (*connectionsv1.StartAuthorizationResponse, error) {
	if s.oauth.RedirectURL == "" {
		return nil, s.toStatus(ctx, fmt.Errorf("StartAuthorization: %w", errNoOAuth))
	}
	c, err := s.get(ctx, req.GetConnectionId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("StartAuthorization: %w", err))
	}
	at := authTypes.of(c.AuthType)
	if at != credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE && at != credentialv1.AuthType_AUTH_TYPE_OAUTH1 {
		return nil, s.toStatus(ctx, invalid("connection_id", "the connection uses neither OAuth 2.0 authorization code nor OAuth 1.0a"))
	}
	conn, ok := s.catalog.Get(c.Connector)
	if !ok || (conn.OAuth2 == nil && conn.OAuth1 == nil) {
		return nil, s.toStatus(ctx, fmt.Errorf("StartAuthorization: %w", errConnectorGone))
	}
	after, err := s.afterAuthorization(ctx, c, req)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("StartAuthorization: %w", err))
	}
	if at == credentialv1.AuthType_AUTH_TYPE_OAUTH1 {
		return s.startOAuth1(ctx, conn, c, after)
	}
	client, err := s.store.OAuthClient(ctx, c.Connector, c.WorkspaceID, true)
	if err != nil {
		return nil, s.toStatus(ctx, missingClient(c.Connector, err))
	}
	clientID := client.ClientID
	scopes := req.GetScopes()
	if len(scopes) == 0 {
		scopes = conn.OAuth2.Scopes
	}
	state := rand.Text() + rand.Text() // 52 base32 characters, 260 bits
	a := &store.AuthState{StateHash: hashState(state), ConnectionID: c.ID, Subject: authz.Actor(ctx), Scopes: scopes,
		RedirectURI: s.oauth.RedirectURL, ExpireTime: time.Now().Add(s.oauth.StateTTL),
		BindRecipeID: after.BindRecipeID, BindStep: after.BindStep, ReturnURL: after.ReturnURL}
	if err := s.store.CreateAuthState(ctx, a); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("StartAuthorization: %w", err))
	}
	cfg := s.oauthConfig(conn, c, clientID, scopes)
	var opts []oauth2.AuthCodeOption
	if conn.OAuth2.PKCE {
		opts = append(opts, oauth2.S256ChallengeOption(s.verifier(state)))
	}
	return &connectionsv1.StartAuthorizationResponse{
		AuthorizeUrl: cfg.AuthCodeURL(state, opts...),
		ExpireTime:   timestamppb.New(a.ExpireTime),
	}, nil
}

// startOAuth1 has the broker fetch a request token (it holds the consumer
// secret) and returns the app's authorization URL. The callback URL carries
// the state, which OAuth 1.0a has no parameter for.
func (s *Server) startOAuth1(ctx context.Context, conn *catalog.Connector, c *store.Connection, after store.AuthState) (*connectionsv1.StartAuthorizationResponse, error) {
	client, err := s.store.OAuthClient(ctx, c.Connector, c.WorkspaceID, true)
	if err != nil {
		return nil, s.toStatus(ctx, missingClient(c.Connector, err))
	}
	state := rand.Text() + rand.Text()
	// The request token waits in a new secret generation whose intent lasts
	// as long as the state; the connection keeps serving its current one
	// until the callback commits the new one.
	wr, err := s.beginWrite(ctx, c.ID, s.oauth.StateTTL)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("StartAuthorization: %w", err))
	}
	a := &store.AuthState{StateHash: hashState(state), ConnectionID: c.ID, Subject: authz.Actor(ctx),
		RedirectURI: s.oauth.RedirectURL, ExpireTime: time.Now().Add(s.oauth.StateTTL), SecretGeneration: wr.key.Generation,
		BindRecipeID: after.BindRecipeID, BindStep: after.BindStep, ReturnURL: after.ReturnURL}
	if err := s.store.CreateAuthState(ctx, a); err != nil {
		s.abort(ctx, wr, true)
		return nil, s.toStatus(ctx, fmt.Errorf("StartAuthorization: %w", err))
	}
	bctx, cancel := s.brokerCtx(ctx)
	defer cancel()
	resp, err := s.broker.StartOAuth1(bctx, &brokerv1.StartOAuth1Request{SecretGeneration: wr.key.Generation,
		ConnectionId: c.ID, WorkspaceId: c.WorkspaceID, Connector: c.Connector, Instance: c.Instance.Proto(),
		AllowedHosts: conn.HostsFor(c.Instance.Proto()), TestRequest: testRequest(conn, c, c.Instance.Proto()),
		Endpoint: &brokerv1.OAuth1Endpoint{RequestTokenUrl: expand(conn.OAuth1.RequestTokenURL, c.Instance),
			AuthorizeUrl: expand(conn.OAuth1.AuthorizeURL, c.Instance), AccessTokenUrl: expand(conn.OAuth1.AccessTokenURL, c.Instance)},
		CallbackUrl: s.oauth.RedirectURL + "?state=" + state, Client: clientRef(client), PrivateNetwork: conn.PrivateNetwork,
		BaseUrl: baseURLOf(conn, c.Instance),
	})
	if err != nil {
		s.abort(ctx, wr, true)
		return nil, s.toStatus(ctx, brokerErr("StartAuthorization", err))
	}
	return &connectionsv1.StartAuthorizationResponse{AuthorizeUrl: resp.GetAuthorizeUrl(), ExpireTime: timestamppb.New(a.ExpireTime)}, nil
}

// afterAuthorization checks what the callback is to do once done: bind a
// recipe step (the caller needs the recipes privilege, and the recipe must
// be in the connection's workspace) and send the browser back to a return
// URL (its origin among the workspace's allowed origins). It returns them
// as the auth state's fields.
func (s *Server) afterAuthorization(ctx context.Context, c *store.Connection, req *connectionsv1.StartAuthorizationRequest) (store.AuthState, error) {
	var a store.AuthState
	if b := req.GetBind(); b != nil {
		if err := authz.CheckPrivilege(ctx, privilege.ManageRecipes); err != nil {
			return a, fmt.Errorf("bind: %w", err)
		}
		r, err := s.store.GetRecipe(ctx, b.GetRecipeId())
		if err == nil && r.WorkspaceID != c.WorkspaceID {
			err = store.ErrNotFound
		}
		if err != nil {
			return a, missing("recipe not found; register it with RegisterRecipe", err)
		}
		a.BindRecipeID, a.BindStep = b.GetRecipeId(), b.GetStep()
	}
	if ret := req.GetReturnUrl(); ret != "" {
		if err := s.checkReturnURL(ctx, c.WorkspaceID, ret); err != nil {
			return a, err
		}
		a.ReturnURL = ret
	}
	return a, nil
}

// checkReturnURL refuses a return URL that is not on one of workspace ws's
// allowed origins.
func (s *Server) checkReturnURL(ctx context.Context, ws, ret string) error {
	u, err := url.Parse(ret)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || !validtext.Valid(ret) {
		return invalid("return_url", "an http or https URL without user info")
	}
	w, err := s.store.GetWorkspace(ctx, ws)
	if err != nil {
		return err
	}
	origin := strings.ToLower(u.Scheme + "://" + u.Host)
	if !slices.ContainsFunc(w.AllowedOrigins, func(o string) bool { return strings.EqualFold(o, origin) }) {
		return invalid("return_url", fmt.Sprintf(
			"%s is not among the workspace's allowed origins; add it with UpdateWorkspaceSettings", origin))
	}
	return nil
}

// oauthConfig resolves the connector's endpoints for connection c.
func (s *Server) oauthConfig(conn *catalog.Connector, c *store.Connection, clientID string, scopes []string) oauth2.Config {
	auth, token := conn.OAuth2.AuthorizeURL, conn.OAuth2.TokenURL
	if c.Instance.Sandbox && conn.OAuth2.SandboxAuthorizeURL != "" {
		auth, token = conn.OAuth2.SandboxAuthorizeURL, conn.OAuth2.SandboxTokenURL
	}
	return oauth2.Config{ClientID: clientID, RedirectURL: s.oauth.RedirectURL, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: expand(auth, c.Instance), TokenURL: expand(token, c.Instance)}}
}

// identityURL is where the connector's test request goes, when it is a GET
// (and so can tell who a token belongs to).
func identityURL(conn *catalog.Connector, c *store.Connection) string {
	if conn.TestRequest == nil || !strings.EqualFold(conn.TestRequest.Method, "GET") {
		return ""
	}
	return testURL(conn, c)
}

// testURL is the absolute URL of the connector's test request for c.
func testURL(conn *catalog.Connector, c *store.Connection) string {
	if conn.TestRequest == nil {
		return ""
	}
	base := baseURLOf(conn, c.Instance)
	if base == "" {
		return ""
	}
	return strings.TrimSuffix(base, "/") + conn.TestRequest.Path
}

// baseURLOf is the app's base URL for a connection on instance in: the
// instance's, else the catalog's default for it ("" when neither).
func baseURLOf(conn *catalog.Connector, in store.Instance) string {
	if in.BaseURL != "" {
		return in.BaseURL
	}
	return expand(conn.DefaultBaseURL, in)
}

// expand fills {subdomain} in a catalog URL.
func expand(url string, in store.Instance) string {
	return strings.ReplaceAll(url, "{subdomain}", in.Subdomain)
}

// verifier derives the PKCE verifier from the state: 43 URL-safe characters.
func (s *Server) verifier(state string) string {
	m := hmac.New(sha256.New, s.oauth.StateKey)
	m.Write([]byte(state))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func hashState(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}
