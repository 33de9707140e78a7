package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/loopback"
)

// pki is a throwaway CA and the files of certificates it signs.
type pki struct {
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), ca: ca, key: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

// issue writes name.pem and name-key.pem for a loopback server and client.
func (p *pki) issue(t *testing.T, name string) (cert, key string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	cert, key = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, key, "EC PRIVATE KEY", kb)
	return cert, key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// With TLS on, the connection service reaches the broker's admin API with its
// client certificate, nothing reaches it without one, probes use the
// plaintext health listener, and metrics count the calls.
func TestTLSBetweenServices(t *testing.T) {
	p := newPKI(t)
	ca := filepath.Join(p.dir, "ca.pem")
	bCert, bKey := p.issue(t, "broker")
	cCert, cKey := p.issue(t, "connections")
	addrs, err := loopback.FreeAddrs(3)
	if err != nil {
		t.Fatal(err)
	}
	bHealth, bMetrics, cHealth := addrs[0], addrs[1], addrs[2]
	b, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: "broker-tls.log", Probe: bHealth, Args: []string{
		"-tls-cert-file=" + bCert, "-tls-key-file=" + bKey, "-tls-ca-file=" + ca,
		"-health-listen=" + bHealth, "-metrics-listen=" + bMetrics,
		// Only the connection service's certificate, by name; no token.
		"-admin-client-names=connections", "-admin-token-file="}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := stack.StartConnectionService(t.Context(), "sqlite:"+sqlitePath(t), devstack.Extra{
		LogName: "connections-tls.log", Probe: cHealth, Args: []string{
			"-tls-cert-file=" + cCert, "-tls-key-file=" + cKey, "-tls-ca-file=" + ca,
			"-broker-admin-addr=" + b.AdminAddr, "-health-listen=" + cHealth, "-broker-admin-token-file="}})
	if err != nil {
		t.Fatal(err)
	}

	// Platform service -> connection service (TLS) -> broker admin (mutual TLS).
	tlsCC, err := grpc.NewClient(c.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer tlsCC.Close()
	created, err := connectionsv1.NewConnectionServiceClient(tlsCC).CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{
		WorkspaceId: "ws-tls", Name: "over TLS", Connector: "stripe", Environment: prod, AuthType: key, Secret: apiKey("sk_tls")})
	if err != nil {
		t.Fatalf("CreateConnection over TLS: %v", err)
	}

	// The admin API refuses callers without a client certificate, and plaintext.
	noCert, _ := grpc.NewClient(b.AdminAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.pool})))
	defer noCert.Close()
	plain, _ := grpc.NewClient(b.AdminAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer plain.Close()
	// A certificate from the same CA under another name is refused too: the
	// admin API pins the connection service's name.
	iCert, iKey := p.issue(t, "intruder")
	pair, err := tls.LoadX509KeyPair(iCert, iKey)
	if err != nil {
		t.Fatal(err)
	}
	intruder, _ := grpc.NewClient(b.AdminAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.pool,
		Certificates: []tls.Certificate{pair}})))
	defer intruder.Close()
	for name, cc := range map[string]*grpc.ClientConn{"no client certificate": noCert, "plaintext": plain, "another name's certificate": intruder} {
		if _, err := brokerv1.NewBrokerAdminClient(cc).DeleteSecret(ctxT(t), &brokerv1.DeleteSecretRequest{ConnectionId: created.GetConnection().GetId()}); err == nil {
			t.Errorf("admin API accepted a caller with %s", name)
		} else if name == "another name's certificate" && status.Code(err) != codes.Unauthenticated && status.Code(err) != codes.Unavailable {
			// Refused in the TLS handshake (Unavailable) or, failing that,
			// by the admin API's interceptor (Unauthenticated).
			t.Errorf("another name's certificate: %v, want Unauthenticated or a refused handshake", err)
		}
	}
	if code, _ := vaultRead(t, created.GetConnection().GetId()); code != http.StatusOK {
		t.Errorf("the secret is gone (status %d) after refused admin calls", code)
	}

	// Probes: plaintext health on its own listener.
	for _, addr := range []string{bHealth, cHealth} {
		hc, _ := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		resp, err := healthpb.NewHealthClient(hc).Check(ctxT(t), &healthpb.HealthCheckRequest{})
		hc.Close()
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health listener %s: %v, %v", addr, resp, err)
		}
	}

	// Metrics count the admin call the connection service made.
	resp, err := http.Get("http://" + bMetrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `grpc_server_handled_total{grpc_code="OK",grpc_method="PutSecret"`) {
		t.Error("broker metrics do not count the PutSecret call")
	}
}
