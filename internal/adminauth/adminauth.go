// Package adminauth authenticates callers of the broker's admin API (the
// connection service) in every deployment: a shared service token, compared
// in constant time, and, with TLS, client certificates whose name is pinned.
// With neither configured every call is refused (a broker that serves only
// workers, e.g. a sidecar, needs none). Health (for probes) and reflection
// stay open.
package adminauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// MinTokenLen is the shortest accepted service token, in bytes.
const MinTokenLen = 32

// Tokens is the set of accepted service tokens: a fixed value, or the lines
// of a file, read again when the file changes (checked at most once a
// second), so that a token is rotated without restarting anything: add the
// new token as a second line on both sides, roll the callers (they send the
// first line), then drop the old one. A file that cannot be read, or holds a
// token that is too short, keeps the tokens read before.
type Tokens struct {
	file string
	now  func() time.Time

	mu      sync.Mutex
	checked time.Time
	mod     time.Time
	size    int64
	list    []string
}

// LoadTokens reads the tokens in file (one per line; white space trimmed,
// blank lines skipped), or value when file is empty; nil when neither
// holds any.
func LoadTokens(file, value string) (*Tokens, error) {
	t := &Tokens{file: file, now: time.Now}
	if file == "" {
		list, err := parseTokens(value)
		if err != nil || len(list) == 0 {
			return nil, err
		}
		t.list = list
		return t, nil
	}
	if err := t.reload(); err != nil {
		return nil, err
	}
	if len(t.list) == 0 {
		return nil, nil
	}
	t.checked = t.now()
	return t, nil
}

func parseTokens(text string) ([]string, error) {
	var list []string
	for line := range strings.Lines(text) {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if len(line) < MinTokenLen {
			return nil, fmt.Errorf("adminauth: an admin token must be at least %d bytes", MinTokenLen)
		}
		list = append(list, line)
	}
	return list, nil
}

// reload reads the file again if it changed; t.mu held or t unshared.
func (t *Tokens) reload() error {
	fi, err := os.Stat(t.file)
	if err != nil {
		return fmt.Errorf("adminauth: token file: %w", err)
	}
	if fi.ModTime().Equal(t.mod) && fi.Size() == t.size && t.list != nil {
		return nil
	}
	b, err := os.ReadFile(t.file)
	if err != nil {
		return fmt.Errorf("adminauth: token file: %w", err)
	}
	list, err := parseTokens(string(b))
	if err != nil {
		return err
	}
	if len(list) == 0 && t.list != nil {
		return errors.New("adminauth: token file is empty")
	}
	t.list, t.mod, t.size = list, fi.ModTime(), fi.Size()
	return nil
}

// List returns the accepted tokens (none for a nil set).
func (t *Tokens) List() []string {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.file != "" && t.now().Sub(t.checked) >= time.Second {
		t.checked = t.now()
		_ = t.reload() // a bad file keeps the tokens read before
	}
	return t.list
}

// GetRequestMetadata implements credentials.PerRPCCredentials: a caller
// sends the first token.
func (t *Tokens) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	list := t.List()
	if len(list) == 0 {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + list[0]}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials; see Token.
func (*Tokens) RequireTransportSecurity() bool { return false }

// Names splits a comma-separated list of client certificate names.
func Names(list string) []string {
	var out []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Server says which callers the admin API accepts.
type Server struct {
	// Tokens are the accepted service tokens (nil for none).
	Tokens *Tokens
	// ClientNames pins TLS client certificates: a verified certificate whose
	// common name or a DNS name is listed is accepted (TLS only).
	ClientNames []string
}

// Validate refuses client names without TLS: they could never match.
func (s Server) Validate(tls bool) error {
	if len(s.ClientNames) > 0 && !tls {
		return errors.New("adminauth: client names need TLS (-tls-cert-file, -tls-key-file, -tls-ca-file)")
	}
	return nil
}

// Configured reports whether any caller can get in; without, the admin API
// refuses every call.
func (s Server) Configured() bool { return len(s.Tokens.List()) > 0 || len(s.ClientNames) > 0 }

var errUnauthenticated = status.Error(codes.Unauthenticated,
	"the admin API is for the connection service: present its service token or its pinned client certificate")

func (s Server) authenticate(ctx context.Context) error {
	for _, want := range s.Tokens.List() {
		for _, v := range metadata.ValueFromIncomingContext(ctx, "authorization") {
			got, ok := strings.CutPrefix(v, "Bearer ")
			// Comparing digests keeps the time independent of both lengths.
			a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
			if ok && subtle.ConstantTimeCompare(a[:], b[:]) == 1 {
				return nil
			}
		}
	}
	if len(s.ClientNames) > 0 {
		if p, ok := peer.FromContext(ctx); ok {
			if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
				leaf := ti.State.VerifiedChains[0][0]
				if slices.Contains(s.ClientNames, leaf.Subject.CommonName) ||
					slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return slices.Contains(s.ClientNames, n) }) {
					return nil
				}
			}
		}
	}
	return errUnauthenticated
}

// open reports whether a method needs no credentials: health (probes) and
// reflection (the schema, public anyway).
func open(method string) bool {
	return strings.HasPrefix(method, "/"+healthpb.Health_ServiceDesc.ServiceName+"/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

// Unary authenticates unary calls.
func (s Server) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !open(info.FullMethod) {
			if err := s.authenticate(ctx); err != nil {
				return nil, err
			}
		}
		return h(ctx, req)
	}
}

// Stream authenticates streaming calls (reflection included).
func (s Server) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if !open(info.FullMethod) {
			if err := s.authenticate(ss.Context()); err != nil {
				return err
			}
		}
		return h(srv, ss)
	}
}

// Token sends the service token with every call. It works without TLS too:
// the admin API listens on loopback or a network policy keeps it private.
type Token string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t Token) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (Token) RequireTransportSecurity() bool { return false }
