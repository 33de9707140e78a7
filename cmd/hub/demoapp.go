package main

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// demoConnector is the connector of the local stack's demo app, added to
// the catalog by `hub dev` only: the catalog's own connectors send
// credentials to no loopback address.
const demoConnector = "demo_api"

// demoApp stands in for a customer's app in the local stack: an HTTP API
// on loopback that answers GET /v1/me to a request carrying its key as a
// bearer token, and 401 to any other. Workers reach it with the key put on
// by the SDK or by the broker's egress proxy, never typing the key.
type demoApp struct {
	URL        string
	key        string
	authorized atomic.Int64 // requests that carried the key
	srv        *http.Server
}

func startDemoApp(key string) (*demoApp, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo app: %w", err)
	}
	a := &demoApp{URL: "http://" + l.Addr().String(), key: key}
	a.srv = &http.Server{Handler: http.HandlerFunc(a.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.srv.Serve(l) }()
	return a, nil
}

func (a *demoApp) Close() { _ = a.srv.Close() }

func (a *demoApp) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	want := "Bearer " + a.key
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "missing or wrong API key"})
		return
	}
	a.authorized.Add(1)
	if r.Method != http.MethodGet || r.URL.Path != "/v1/me" {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "only GET /v1/me is here"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"user": "demo-user", "app": "Demo API"})
}

// writeCatalog writes the catalog file that adds the demo app's connector.
func (a *demoApp) writeCatalog(dir string) (string, error) {
	path := filepath.Join(dir, "catalog.yaml")
	yaml := fmt.Sprintf(`connectors:
  - name: %s
    display_name: Demo API (local)
    description: The local stack's demo app on loopback (hub dev only).
    auth_types: [api_key]
    default_base_url: %s
    private_network: true # the demo app is on loopback
    test_request: {method: GET, path: /v1/me}
`, demoConnector, a.URL)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return "", fmt.Errorf("demo catalog: %w", err)
	}
	return path, nil
}
