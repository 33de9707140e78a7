package oauthtest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// OAuth1Server is a loopback OAuth 1.0a provider (three-legged, HMAC-SHA1)
// that verifies every signature it receives, as Trello and its kind do.
// No maintained Go library serves OAuth 1.0a, so the verification is written
// out here from RFC 5849, section 3.4.
type OAuth1Server struct {
	URL            string
	ConsumerKey    string
	ConsumerSecret string
	Subject        string

	mu       sync.Mutex
	request  map[string]pending // request token -> state
	access   map[string]string  // access token -> secret
	verified int                // signed API calls accepted
}

type pending struct {
	secret, callback, verifier string
	authorized                 bool
}

// StartOAuth1 runs a provider until the test ends.
func StartOAuth1(t testing.TB) *OAuth1Server {
	t.Helper()
	s := &OAuth1Server{ConsumerKey: "ih-consumer", ConsumerSecret: rand.Text(), Subject: "trello-user",
		request: map[string]pending{}, access: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/request_token", s.requestToken)
	mux.HandleFunc("/authorize", s.authorize)
	mux.HandleFunc("/access_token", s.accessToken)
	mux.HandleFunc("/me", s.me)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.URL = "http://" + l.Addr().String()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Verified counts signed API calls the provider accepted.
func (s *OAuth1Server) Verified() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verified
}

func token() string { return strings.ToLower(rand.Text()) }

func (s *OAuth1Server) requestToken(w http.ResponseWriter, r *http.Request) {
	p, ok := s.verify(w, r, func(string) (string, bool) { return "", true })
	if !ok {
		return
	}
	tok, sec := token(), token()
	s.mu.Lock()
	s.request[tok] = pending{secret: sec, callback: p["oauth_callback"]}
	s.mu.Unlock()
	fmt.Fprintf(w, "oauth_token=%s&oauth_token_secret=%s&oauth_callback_confirmed=true", tok, sec)
}

// authorize approves at once: the user consents.
func (s *OAuth1Server) authorize(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("oauth_token")
	s.mu.Lock()
	p, ok := s.request[tok]
	if ok {
		p.verifier, p.authorized = token(), true
		s.request[tok] = p
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, "unknown request token", http.StatusBadRequest)
		return
	}
	cb, err := url.Parse(p.callback)
	if err != nil {
		http.Error(w, "bad callback", http.StatusBadRequest)
		return
	}
	q := cb.Query()
	q.Set("oauth_token", tok)
	q.Set("oauth_verifier", p.verifier)
	cb.RawQuery = q.Encode()
	http.Redirect(w, r, cb.String(), http.StatusFound)
}

func (s *OAuth1Server) accessToken(w http.ResponseWriter, r *http.Request) {
	var req pending
	p, ok := s.verify(w, r, func(tok string) (string, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		req = s.request[tok]
		return req.secret, req.authorized
	})
	if !ok {
		return
	}
	if p["oauth_verifier"] != req.verifier {
		http.Error(w, "bad verifier", http.StatusUnauthorized)
		return
	}
	tok, sec := token(), token()
	s.mu.Lock()
	delete(s.request, p["oauth_token"]) // request tokens are single-use
	s.access[tok] = sec
	s.mu.Unlock()
	fmt.Fprintf(w, "oauth_token=%s&oauth_token_secret=%s", tok, sec)
}

func (s *OAuth1Server) me(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.verify(w, r, func(tok string) (string, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		sec, ok := s.access[tok]
		return sec, ok
	}); !ok {
		return
	}
	s.mu.Lock()
	s.verified++
	s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]string{"username": s.Subject})
}

// verify checks the request's OAuth 1.0a signature. tokenSecret looks up the
// secret of the oauth_token in the request ("" before there is one).
func (s *OAuth1Server) verify(w http.ResponseWriter, r *http.Request, tokenSecret func(string) (string, bool)) (map[string]string, bool) {
	oauthParams, err := parseAuthHeader(r.Header.Get("Authorization"))
	if err != nil || oauthParams["oauth_consumer_key"] != s.ConsumerKey || oauthParams["oauth_signature_method"] != "HMAC-SHA1" {
		http.Error(w, "bad or missing OAuth header", http.StatusUnauthorized)
		return nil, false
	}
	secret, ok := tokenSecret(oauthParams["oauth_token"])
	if !ok {
		http.Error(w, "unknown token", http.StatusUnauthorized)
		return nil, false
	}
	// Parameters: the header's oauth_* (less the signature), the query, and a
	// form body (RFC 5849 3.4.1.3).
	var pairs [][2]string
	for k, v := range oauthParams {
		if k != "oauth_signature" && k != "realm" {
			pairs = append(pairs, [2]string{k, v})
		}
	}
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			pairs = append(pairs, [2]string{k, v})
		}
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err == nil {
			for k, vs := range r.PostForm {
				for _, v := range vs {
					pairs = append(pairs, [2]string{k, v})
				}
			}
		}
	}
	for i := range pairs {
		pairs[i] = [2]string{encode(pairs[i][0]), encode(pairs[i][1])}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i][0] != pairs[j][0] {
			return pairs[i][0] < pairs[j][0]
		}
		return pairs[i][1] < pairs[j][1]
	})
	norm := make([]string, len(pairs))
	for i, p := range pairs {
		norm[i] = p[0] + "=" + p[1]
	}
	base := strings.ToUpper(r.Method) + "&" + encode("http://"+r.Host+r.URL.EscapedPath()) + "&" + encode(strings.Join(norm, "&"))
	mac := hmac.New(sha1.New, []byte(encode(s.ConsumerSecret)+"&"+encode(secret)))
	mac.Write([]byte(base))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(oauthParams["oauth_signature"])) {
		http.Error(w, "signature does not verify", http.StatusUnauthorized)
		return nil, false
	}
	return oauthParams, true
}

// parseAuthHeader reads `OAuth k="v", ...` into decoded values.
func parseAuthHeader(h string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(h, "OAuth ")
	if !ok {
		return nil, fmt.Errorf("not an OAuth header")
	}
	out := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("bad parameter %q", part)
		}
		v, err := url.PathUnescape(strings.Trim(v, `"`))
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// encode is RFC 3986 percent-encoding as RFC 5849 3.6 requires.
func encode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
