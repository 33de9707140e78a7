// Package egress is how this project reaches addresses that users chose:
// the broker's requests to apps with a credential on them (the egress
// proxy's requests and connection test requests) and the connection
// service's webhook deliveries. All go through the same guard, so that a
// base URL, test URL or webhook URL cannot reach the deployment's own
// network: unless private networks are allowed (a connector marked
// private_network, or -webhook-allow-private), the address actually dialled
// (after DNS, so a name that resolves there is refused too) must be public.
// No redirect is ever followed: a RoundTripper does not follow them, and the
// clients built here return the redirect as the answer.
package egress

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// ErrPrivateAddress is the dial error for an app on a private network whose
// connector does not allow one.
var ErrPrivateAddress = errors.New("the app's address is on a private network, which this connector does not allow")

// Apps holds the two transports to apps: one that dials public addresses
// only, one that dials any (for connectors marked private_network).
type Apps struct {
	public, any *http.Transport
}

// New returns the transports, verifying TLS with roots (nil: the system's).
func New(roots *x509.CertPool) *Apps {
	return &Apps{public: transport(roots, false), any: transport(roots, true)}
}

// Client is an HTTP client to apps (any address when private, else public
// ones only) that gives up after
// timeout and returns a redirect as the answer instead of following it.
func (a *Apps) Client(private bool, timeout time.Duration) *http.Client {
	t := a.public
	if private {
		t = a.any
	}
	return &http.Client{Transport: t, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func transport(roots *x509.CertPool, private bool) *http.Transport {
	return &http.Transport{DialContext: Dialer(private).DialContext, TLSClientConfig: TLSConfig(roots),
		ForceAttemptHTTP2: true, MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second}
}

// Dialer dials apps: any address when private, else public addresses only
// (checked on the address actually dialled, after DNS), failing with
// ErrPrivateAddress. Every client to apps dials through one of these.
func Dialer(private bool) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !private {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !Public(ap.Addr()) {
				return ErrPrivateAddress
			}
			return nil
		}
	}
	return d
}

// TLSConfig verifies apps with roots (nil: the system's).
func TLSConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// Public reports whether a is an address on the public internet: not
// loopback, private (RFC 1918, unique local), link-local, unspecified,
// multicast, or IPv4 shared address space (RFC 6598, carrier-grade NAT,
// used by some clusters), also when written as an IPv4-mapped IPv6 address.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	return !sharedAddressSpace.Contains(a)
}

var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// Roots are the system's roots plus the PEM certificates in file (none when
// file is empty).
func Roots(file string) (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if file == "" {
		return roots, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return roots, nil
}
