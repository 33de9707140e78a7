// Package connectpage serves the hosted connect flow: the pages behind a
// CreateConnectSession URL, where a person chooses an app, enters its
// instance and secret (or continues to its OAuth consent) and is sent back
// to the platform. The pages call the same ConnectionService handlers as
// the gRPC API, as the session's creator and within what the session
// allows, so every rule (privileges, validation, the write protocol) holds
// alike. A secret entered here goes to the broker and is never written into
// a page, a log line or the session.
package connectpage

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

	"github.com/integrationhub/connections/services/connections/internal/api"
	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

//go:embed pages.html
var pagesHTML string

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("page").Parse(pagesHTML))

// MaxAttempts is how many forms one session may submit (wrong keys
// included) before it is refused.
const MaxAttempts = 10

// csrfCookie holds the form's anti-forgery value (double submit): a page
// of another site can neither read it nor, SameSite=Strict, send it.
const csrfCookie = "ih_connect_csrf"

// Handler serves api.ConnectPath.
type Handler struct {
	API     connectionsv1.ConnectionServiceServer
	Store   store.Store
	Catalog *catalog.Catalog
	Logger  *slog.Logger
}

// page is what pages.html shows.
type page struct {
	Kind                   string // choose, form or message
	Title, Subtitle, Body  string
	Initial                string
	Error                  string
	Assets                 string
	Apps                   []app
	App, AppName           string
	Description            string
	CSRF                   string
	AskName                bool
	Name, Username         string
	Params                 []param
	Auth                   string // key, basic or oauth
	status                 int
	formAction, frameAllow []string
}

type app struct{ Name, DisplayName, Initial string }

type param struct {
	Name, Label, Hint, Value string
	Required                 bool
}

// ServeHTTP serves the pages of one session and their style sheet.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, api.ConnectPath)
	if file, ok := strings.CutPrefix(rest, "assets/"); ok && r.Method == http.MethodGet && file == "style.css" {
		b, _ := assets.ReadFile("assets/style.css")
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(b)
		return
	}
	token := rest
	if token == "" || len(token) > 100 || strings.Contains(token, "/") {
		h.show(w, r, nil, gone("This link is not valid."))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	switch r.Method {
	case http.MethodGet:
		h.get(ctx, w, r, token)
	case http.MethodPost:
		h.post(ctx, w, r, token)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func gone(why string) *page {
	return &page{Kind: "message", Title: "This link no longer works", Initial: "!", status: http.StatusGone,
		Body: why + " Go back to the app you came from and start connecting again: it gives you a new link."}
}

// session loads the token's live session, counting an attempt for a
// submission.
func (h *Handler) session(ctx context.Context, token string, attempt bool) (*store.ConnectSession, *page) {
	cs, err := h.Store.ConnectSession(ctx, api.HashConnectToken(token), time.Now(), attempt)
	if errors.Is(err, store.ErrNotFound) {
		return nil, gone("This link has expired or was already used.")
	}
	if err != nil {
		h.Logger.ErrorContext(ctx, "connect session lookup failed", "err", err)
		return nil, &page{Kind: "message", Title: "Something went wrong", Initial: "!", status: http.StatusServiceUnavailable,
			Body: "The service could not open this link just now. Reload the page in a moment."}
	}
	return cs, nil
}

func (h *Handler) get(ctx context.Context, w http.ResponseWriter, r *http.Request, token string) {
	cs, p := h.session(ctx, token, false)
	if p != nil {
		h.show(w, r, nil, p)
		return
	}
	name := r.URL.Query().Get("app")
	if name == "" && len(cs.Connectors) == 1 {
		name = cs.Connectors[0]
	}
	if name == "" || !slices.Contains(cs.Connectors, name) {
		h.show(w, r, cs, h.choose(cs))
		return
	}
	h.show(w, r, cs, h.form(cs, name, nil, ""))
}

func (h *Handler) choose(cs *store.ConnectSession) *page {
	p := &page{Kind: "choose", Title: "Connect an app", Initial: "+"}
	for _, n := range cs.Connectors {
		if c, ok := h.Catalog.Get(n); ok {
			p.Apps = append(p.Apps, app{Name: c.Name, DisplayName: c.DisplayName, Initial: initial(c.DisplayName)})
		}
	}
	return p
}

// form is connector name's form, filled with what was submitted (never
// the secret) and the error that sent the person back to it.
func (h *Handler) form(cs *store.ConnectSession, name string, f url.Values, errText string) *page {
	c, ok := h.Catalog.Get(name)
	if !ok {
		return gone("This app is no longer offered.")
	}
	auth, _ := formAuth(c)
	p := &page{Kind: "form", Title: "Connect " + c.DisplayName, Initial: initial(c.DisplayName), App: c.Name, AppName: c.DisplayName,
		Description: c.Description, Error: errText, Auth: auth, AskName: cs.ParentConnectionID == ""}
	if cs.ParentConnectionID != "" {
		p.Subtitle = "Your own account, used when recipes run for you"
	}
	p.Name = c.DisplayName
	if f != nil {
		p.Name, p.Username = f.Get("name"), f.Get("username")
	}
	for _, prm := range c.InstanceParameters {
		v := ""
		if f != nil {
			v = f.Get("instance." + prm.Name)
		}
		p.Params = append(p.Params, param{Name: prm.Name, Label: labelOf(prm.Name), Hint: prm.Description, Value: v, Required: prm.Required})
	}
	return p
}

// formAuth is how the form asks for the credential ("oauth", "key" or
// "basic"; "" when a person cannot complete any of the connector's auth
// types here) and the auth type that answer makes: the connector's first
// auth type a person can complete here.
func formAuth(c *catalog.Connector) (string, credentialv1.AuthType) {
	for _, at := range c.AuthTypes() {
		switch at {
		case credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE, credentialv1.AuthType_AUTH_TYPE_OAUTH1:
			return "oauth", at
		case credentialv1.AuthType_AUTH_TYPE_API_KEY, credentialv1.AuthType_AUTH_TYPE_CUSTOM_HEADER:
			return "key", at
		case credentialv1.AuthType_AUTH_TYPE_BASIC:
			return "basic", at
		}
	}
	return "", credentialv1.AuthType_AUTH_TYPE_UNSPECIFIED
}

func (h *Handler) post(ctx context.Context, w http.ResponseWriter, r *http.Request, token string) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		h.show(w, r, nil, &page{Kind: "message", Title: "The form could not be read", Initial: "!", status: http.StatusBadRequest,
			Body: "Go back, reload the page and try again."})
		return
	}
	if !h.sameSite(r) {
		h.show(w, r, nil, &page{Kind: "message", Title: "This form was not sent from its page", Initial: "!", status: http.StatusForbidden,
			Body: "For your safety nothing was saved. Open the link from the app you came from and fill in the form there."})
		return
	}
	cs, p := h.session(ctx, token, true)
	if p != nil {
		h.show(w, r, nil, p)
		return
	}
	if cs.Attempts > MaxAttempts {
		h.show(w, r, cs, &page{Kind: "message", Title: "Too many attempts", Initial: "!", status: http.StatusTooManyRequests,
			Body: "This link was used for too many attempts. Go back to the app you came from and start again."})
		return
	}
	name := r.PostForm.Get("app")
	c, ok := h.Catalog.Get(name)
	if !ok || !slices.Contains(cs.Connectors, name) {
		h.show(w, r, cs, h.choose(cs))
		return
	}
	// One submission at a time uses the session; a failed one gives it back.
	if err := h.Store.UseConnectSession(ctx, cs.TokenHash, true); err != nil {
		h.show(w, r, nil, gone("This link was already used."))
		return
	}
	id, next, err := h.connect(h.as(ctx, cs), cs, c, r.PostForm)
	if err != nil {
		if rerr := h.Store.UseConnectSession(context.WithoutCancel(ctx), cs.TokenHash, false); rerr != nil {
			h.Logger.WarnContext(ctx, "could not reopen a connect session after a failed attempt", "err", rerr)
		}
		h.show(w, r, cs, h.form(cs, name, r.PostForm, problem(err)))
		return
	}
	if next == "" {
		next = withOutcome(cs.ReturnURL, id, "connected")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// as is ctx acting as the session's creator, in its workspace only.
func (h *Handler) as(ctx context.Context, cs *store.ConnectSession) context.Context {
	return authz.WithPrincipal(ctx, &authz.Principal{Subject: cs.Subject, Workspace: cs.WorkspaceID, Privileges: cs.Privileges})
}

// connect makes the connection the form describes and returns its id and,
// for OAuth, the consent URL to continue to.
func (h *Handler) connect(ctx context.Context, cs *store.ConnectSession, c *catalog.Connector, f url.Values) (string, string, error) {
	auth, authType := formAuth(c)
	inst := &credentialv1.AppInstance{BaseUrl: strings.TrimSpace(f.Get("instance.base_url")), Subdomain: strings.TrimSpace(f.Get("instance.subdomain")),
		OrgId: strings.TrimSpace(f.Get("instance.org_id")), Sandbox: f.Get("instance.sandbox") == "true"}
	var secret *credentialv1.Secret
	switch auth {
	case "key":
		secret = &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: f.Get("api_key")}}}
	case "basic":
		secret = &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: f.Get("username"), Password: f.Get("password")}}}
	case "":
		return "", "", status.Error(codes.FailedPrecondition, c.DisplayName+" cannot be connected from this page; ask your administrator")
	}
	var conn *connectionsv1.Connection
	if cs.ParentConnectionID != "" {
		resp, err := call(ctx, h.API.CreateRuntimeUserConnection, &connectionsv1.CreateRuntimeUserConnectionRequest{
			ParentConnectionId: cs.ParentConnectionID, RuntimeUser: cs.RuntimeUser, Instance: inst, Secret: secret, Verify: true})
		if err != nil {
			return "", "", err
		}
		conn = resp.GetConnection()
	} else {
		req := &connectionsv1.CreateConnectionRequest{WorkspaceId: cs.WorkspaceID, ProjectId: cs.ProjectID, Name: strings.TrimSpace(f.Get("name")),
			Connector: c.Name, Environment: environment(cs.Environment), AuthType: authType, Instance: inst, Secret: secret, Verify: true}
		if cs.BindRecipeID != "" && auth != "oauth" {
			req.Bind = &connectionsv1.RecipeStep{RecipeId: cs.BindRecipeID, Step: cs.BindStep}
		}
		resp, err := call(ctx, h.API.CreateConnection, req)
		if err != nil {
			return "", "", err
		}
		conn = resp.GetConnection()
	}
	if auth != "oauth" {
		return conn.GetId(), "", nil
	}
	start := &connectionsv1.StartAuthorizationRequest{ConnectionId: conn.GetId(), ReturnUrl: cs.ReturnURL}
	if cs.BindRecipeID != "" {
		start.Bind = &connectionsv1.RecipeStep{RecipeId: cs.BindRecipeID, Step: cs.BindStep}
	}
	resp, err := call(ctx, h.API.StartAuthorization, start)
	if err != nil {
		// The pending connection stays (the platform sees it); say why.
		return "", "", err
	}
	return conn.GetId(), resp.GetAuthorizeUrl(), nil
}

func environment(stored string) connectionsv1.Environment {
	if stored == "sandbox" {
		return connectionsv1.Environment_ENVIRONMENT_SANDBOX
	}
	return connectionsv1.Environment_ENVIRONMENT_PRODUCTION
}

var validator = func() protovalidate.Validator {
	v, err := protovalidate.New()
	if err != nil {
		panic(err)
	}
	return v
}()

// call runs one ConnectionService handler as the gRPC API would: req is
// checked first against its protovalidate rules.
func call[Req proto.Message, Resp any](ctx context.Context, handler func(context.Context, Req) (Resp, error), req Req) (Resp, error) {
	if err := valid(req); err != nil {
		var none Resp
		return none, err
	}
	return handler(ctx, req)
}

// valid applies the request's protovalidate rules, as the gRPC API's
// interceptor does.
func valid(m proto.Message) error {
	var ve *protovalidate.ValidationError
	if err := validator.Validate(m); errors.As(err, &ve) {
		var parts []string
		for _, v := range ve.Violations {
			parts = append(parts, labelOf(fieldOf(v.Proto.GetField().String()))+" "+v.Proto.GetMessage())
		}
		return status.Error(codes.InvalidArgument, strings.Join(parts, "; "))
	} else if err != nil {
		return status.Error(codes.Internal, "internal error")
	}
	return nil
}

// fieldOf pulls the last field name out of a violation's field path.
func fieldOf(path string) string {
	if i := strings.LastIndex(path, "field_name:\""); i >= 0 {
		rest := path[i+len("field_name:\""):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return rest[:j]
		}
	}
	return "a field"
}

// problem is the sentence a person reads for a refused submission: the
// API's message, which names what to change and never holds a secret.
func problem(err error) string {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		return "The service or the app could not be reached just now; nothing was saved. Try again in a moment."
	case codes.PermissionDenied:
		return "This link does not allow that: " + st.Message()
	case codes.Internal, codes.Unknown:
		return "Something went wrong; nothing was saved. Try again."
	}
	msg := st.Message()
	if msg != "" {
		r, size := utf8.DecodeRuneInString(msg)
		msg = string(unicode.ToUpper(r)) + msg[size:]
	}
	return msg
}

// sameSite reports whether a submission comes from the page itself: the
// anti-forgery cookie equals the form's value, and a browser's Origin
// header, when sent, names this service.
func (h *Handler) sameSite(r *http.Request) bool {
	ck, err := r.Cookie(csrfCookie)
	form := r.PostForm.Get("csrf")
	if err != nil || ck.Value == "" || len(form) != len(ck.Value) || subtle.ConstantTimeCompare([]byte(form), []byte(ck.Value)) != 1 {
		return false
	}
	// "null" is what a browser sends when it will not tell (the cookie,
	// which another site can neither read nor send, still holds).
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	return true
}

// show writes a page with the flow's headers: no caching (a page may
// follow a secret's submission), a strict Content-Security-Policy (this
// style sheet only, forms only to this service, the app's consent page
// and the return URL; framing only by the workspace's allowed origins),
// and a fresh anti-forgery cookie for a form.
func (h *Handler) show(w http.ResponseWriter, r *http.Request, cs *store.ConnectSession, p *page) {
	p.Assets = api.ConnectPath + "assets/"
	formAction := []string{"'self'"}
	frame := "'none'"
	if cs != nil {
		if o := origin(cs.ReturnURL); o != "" {
			formAction = append(formAction, o)
		}
		for _, n := range cs.Connectors {
			c, ok := h.Catalog.Get(n)
			if !ok {
				continue
			}
			// An authorize URL with a per-instance template ({subdomain})
			// and OAuth 1.0a's (read from the app at run time) are known
			// only as https.
			if c.OAuth2 != nil {
				if o := origin(c.OAuth2.AuthorizeURL); o != "" && !strings.Contains(o, "{") {
					formAction = append(formAction, o)
				} else {
					formAction = append(formAction, "https:")
				}
			}
			if c.OAuth1 != nil {
				formAction = append(formAction, "https:")
			}
		}
		if ws, err := h.Store.GetWorkspace(r.Context(), cs.WorkspaceID); err == nil && len(ws.AllowedOrigins) > 0 {
			frame = strings.Join(ws.AllowedOrigins, " ")
		}
	}
	if p.Kind == "form" {
		p.CSRF = rand.Text()
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: p.CSRF, Path: api.ConnectPath, HttpOnly: true,
			Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	// The URL carries the session's token: it goes to no other site.
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action "+
		strings.Join(slices.Compact(formAction), " ")+"; frame-ancestors "+frame)
	code := p.status
	if code == 0 {
		code = http.StatusOK
		if p.Error != "" {
			code = http.StatusUnprocessableEntity
		}
	}
	w.WriteHeader(code)
	if err := pages.Execute(w, p); err != nil {
		h.Logger.Error("connect page", "err", err)
	}
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// withOutcome is ret with connection_id and outcome added to its query.
func withOutcome(ret, id, outcome string) string {
	u, err := url.Parse(ret)
	if err != nil {
		return ret
	}
	q := u.Query()
	q.Set("connection_id", id)
	q.Set("outcome", outcome)
	u.RawQuery = q.Encode()
	return u.String()
}

func initial(name string) string {
	r, _ := utf8.DecodeRuneInString(name)
	if r == utf8.RuneError {
		return "?"
	}
	return string(unicode.ToUpper(r))
}

// labelOf turns a field name ("base_url") into a label ("Base URL").
func labelOf(name string) string {
	switch name {
	case "base_url":
		return "Base URL"
	case "org_id":
		return "Organization ID"
	case "sandbox":
		return "This is a sandbox (test) instance"
	}
	words := strings.Fields(strings.ReplaceAll(name, "_", " "))
	for i, w := range words {
		if i == 0 {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}
