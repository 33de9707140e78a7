// Package tlsconfig builds the TLS settings of this project's servers and
// clients from PEM files. Certificates are read on every handshake, so that a
// rotated certificate (cert-manager, a mounted Secret) is used without a
// restart.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files names the PEM files of one side.
type Files struct {
	Cert, Key string // this side's certificate and key
	CA        string // the CA that signs the other side
}

// Enabled reports whether TLS is configured.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" }

// Server returns a server config. With requireClientCert, clients must
// present a certificate signed by f.CA (the broker's admin API).
func Server(f Files, requireClientCert bool) (*tls.Config, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
			return &c, err
		},
	}
	if requireClientCert {
		pool, err := pool(f.CA)
		if err != nil {
			return nil, err
		}
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, pool
	}
	return cfg, nil
}

// Client returns a client config that verifies the server against f.CA and
// presents f.Cert.
func Client(f Files) (*tls.Config, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	p, err := pool(f.CA)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    p,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
			return &c, err
		},
	}, nil
}

// PinClientNames restricts a server config that requires client
// certificates to clients whose verified certificate names one of names (a
// DNS SAN or, failing those, the common name). No names: any certificate the
// CA signed.
func PinClientNames(cfg *tls.Config, names []string) {
	if len(names) == 0 {
		return
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tlsconfig: no client certificate")
		}
		leaf := cs.PeerCertificates[0]
		have := leaf.DNSNames
		if len(have) == 0 {
			have = []string{leaf.Subject.CommonName}
		}
		for _, h := range have {
			for _, n := range names {
				if h == n {
					return nil
				}
			}
		}
		return fmt.Errorf("tlsconfig: client certificate for %v is not one of the allowed clients", have)
	}
}

// ClientRoots returns a client config that verifies the server against the CA
// in caFile and presents no certificate (a sidecar calling a server that
// does not ask for one).
func ClientRoots(caFile string) (*tls.Config, error) {
	p, err := pool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: p}, nil
}

func (f Files) check() error {
	if f.Cert == "" || f.Key == "" {
		return errors.New("tlsconfig: a certificate and its key are both needed")
	}
	if _, err := tls.LoadX509KeyPair(f.Cert, f.Key); err != nil {
		return fmt.Errorf("tlsconfig: %w", err)
	}
	return nil
}

func pool(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, errors.New("tlsconfig: a CA file is needed")
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tlsconfig: no certificate in %s", caFile)
	}
	return p, nil
}
