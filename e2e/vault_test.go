package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// vaultRead reads a connection's KV v2 entry straight from Vault, the way an
// operator would check it, and returns the HTTP status and the entry's data.
func vaultRead(t *testing.T, connectionID string) (int, map[string]any) {
	t.Helper()
	url := stack.Vault.Addr + "/v1/" + stack.KVMount + "/data/" + stack.PathPrefix + "/connections/" + connectionID
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, url, nil)
	req.Header.Set("X-Vault-Token", stack.Vault.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Data struct {
			Data map[string]any `json:"data"`
		} `json:"data"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, out.Data.Data
}

// vaultList lists the connection ids with a secret under the broker's prefix.
func vaultList(t *testing.T) []string {
	t.Helper()
	url := stack.Vault.Addr + "/v1/" + stack.KVMount + "/metadata/" + stack.PathPrefix + "/connections?list=true"
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, url, nil)
	req.Header.Set("X-Vault-Token", stack.Vault.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
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
