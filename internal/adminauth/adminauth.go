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

// LoadToken returns the token in file (surrounding white space trimmed), or
// value when file is empty; "" when both are.
func LoadToken(file, value string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("adminauth: token file: %w", err)
		}
		value = string(b)
	}
	value = strings.TrimSpace(value)
	if value != "" && len(value) < MinTokenLen {
		return "", fmt.Errorf("adminauth: the admin token must be at least %d bytes", MinTokenLen)
	}
	return value, nil
}

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
	// Token is the shared service token ("" for none).
	Token string
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
func (s Server) Configured() bool { return s.Token != "" || len(s.ClientNames) > 0 }

var errUnauthenticated = status.Error(codes.Unauthenticated,
	"the admin API is for the connection service: present its service token or its pinned client certificate")

func (s Server) authenticate(ctx context.Context) error {
	if s.Token != "" {
		for _, v := range metadata.ValueFromIncomingContext(ctx, "authorization") {
			got, ok := strings.CutPrefix(v, "Bearer ")
			// Comparing digests keeps the time independent of both lengths.
			a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.Token))
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
