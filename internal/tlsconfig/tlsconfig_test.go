package tlsconfig_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/integrationhub/connections/internal/tlsconfig"
)

type ca struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) *ca {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	a := &ca{dir: t.TempDir(), cert: c, key: key}
	write(t, filepath.Join(a.dir, "ca.crt"), "CERTIFICATE", der)
	return a
}

func (a *ca) issue(t *testing.T, name string) tlsconfig.Files {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &k.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	f := tlsconfig.Files{Cert: filepath.Join(a.dir, name+".crt"), Key: filepath.Join(a.dir, name+".key"), CA: filepath.Join(a.dir, "ca.crt")}
	write(t, f.Cert, "CERTIFICATE", der)
	write(t, f.Key, "EC PRIVATE KEY", kb)
	return f
}

func write(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// handshake connects a client with files to a server config over an in-memory pipe.
func handshake(t *testing.T, server *tls.Config, client tlsconfig.Files) error {
	t.Helper()
	cc, err := tlsconfig.Client(client)
	if err != nil {
		t.Fatal(err)
	}
	cc.ServerName = "broker"
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	srvErr := make(chan error, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		srvErr <- tls.Server(conn, server).Handshake()
	}()
	conn, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	cliErr := tls.Client(conn, cc).Handshake()
	if err := <-srvErr; err != nil {
		return err
	}
	return cliErr
}

// With names pinned, the admin API takes only those clients' certificates, though the CA signed
// others too; without, any certificate the CA signed.
func TestPinClientNames(t *testing.T) {
	a := newCA(t)
	srvFiles := a.issue(t, "broker")
	conns, worker := a.issue(t, "hub-connections"), a.issue(t, "recipe-worker")

	pinned, err := tlsconfig.Server(srvFiles, true)
	if err != nil {
		t.Fatal(err)
	}
	tlsconfig.PinClientNames(pinned, []string{"hub-connections"})
	if err := handshake(t, pinned, conns); err != nil {
		t.Errorf("the pinned client was refused: %v", err)
	}
	if err := handshake(t, pinned, worker); err == nil {
		t.Error("a client certificate with another name was accepted")
	}

	open, err := tlsconfig.Server(srvFiles, true)
	if err != nil {
		t.Fatal(err)
	}
	tlsconfig.PinClientNames(open, nil)
	if err := handshake(t, open, worker); err != nil {
		t.Errorf("without pinned names, a CA-signed client was refused: %v", err)
	}
}
