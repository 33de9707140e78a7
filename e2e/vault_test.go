package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// vaultRead reads a connection's KV v2 entry straight from Vault, the way an
// operator would check it, and returns the HTTP status and the entry's data.
// A connection's secret lives in generations (connections/<id>/<generation>,
// or the legacy connections/<id>); the newest one is read, which is the live
// one once replaced generations are destroyed. 404 means none is left.
func vaultRead(t *testing.T, connectionID string) (int, map[string]any) {
	t.Helper()
	paths := []string{connectionID}
	for _, g := range vaultKeys(t, stack.PathPrefix+"/connections/"+connectionID) {
		if !strings.HasSuffix(g, "/") {
			paths = append(paths, connectionID+"/"+g)
		}
	}
	code, newest, newestTime := http.StatusNotFound, map[string]any(nil), ""
	for _, p := range paths {
		c, data, created := vaultGet(t, p)
		if c == http.StatusOK && created > newestTime {
			code, newest, newestTime = c, data, created
		}
	}
	return code, newest
}

// vaultHTTPGet GETs path from the stack's Vault with its root token; the
// caller closes the body.
func vaultHTTPGet(t *testing.T, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, stack.Vault.Addr+path, nil)
	req.Header.Set("X-Vault-Token", stack.Vault.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// vaultGet reads one KV v2 entry below the broker's connections folder and
// returns the status, its data and when it was written (RFC 3339).
func vaultGet(t *testing.T, path string) (int, map[string]any, string) {
	t.Helper()
	resp := vaultHTTPGet(t, "/v1/"+stack.KVMount+"/data/"+stack.PathPrefix+"/connections/"+path)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Data struct {
			Data     map[string]any `json:"data"`
			Metadata struct {
				CreatedTime string `json:"created_time"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, out.Data.Data, out.Data.Metadata.CreatedTime
}

// vaultKeys lists a KV folder below the mount (nil when it is empty).
func vaultKeys(t *testing.T, folder string) []string {
	t.Helper()
	resp := vaultHTTPGet(t, "/v1/"+stack.KVMount+"/metadata/"+folder+"?list=true")
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var out struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Data.Keys
}

// vaultList lists the connection ids with a secret under the broker's prefix.
func vaultList(t *testing.T) []string {
	t.Helper()
	return vaultKeys(t, stack.PathPrefix+"/connections")
}
