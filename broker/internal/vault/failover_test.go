package vault

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A node that cannot be reached is skipped (the request is sent to the next
// one, since it was never sent) and later requests stay on the node that
// answered; a node answering 503 (sealed, or a standby without a leader) is
// left for the next request, and its answer is returned as it was.
func TestFailoverBetweenNodes(t *testing.T) {
	var hits []string
	node := func(name string, code int) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			hits = append(hits, name+":"+string(b))
			w.WriteHeader(code)
		}))
		t.Cleanup(s.Close)
		return s
	}
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	sealed := node("sealed", http.StatusServiceUnavailable)
	live := node("live", http.StatusOK)

	nodes, err := parseAddrs(dead + ", " + sealed.URL + "," + live.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &failover{next: http.DefaultTransport, nodes: nodes}}
	post := func(body string) int {
		resp, err := c.Post(dead+"/v1/secret/data/x", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("1"); code != http.StatusServiceUnavailable {
		t.Errorf("first request: %d, want the sealed node's 503 (the dead node skipped)", code)
	}
	if code := post("2"); code != http.StatusOK {
		t.Errorf("second request: %d, want 200 from the live node", code)
	}
	if code := post("3"); code != http.StatusOK {
		t.Errorf("third request: %d, want 200 (stays on the live node)", code)
	}
	if got, want := strings.Join(hits, " "), "sealed:1 live:2 live:3"; got != want {
		t.Errorf("requests reached %q, want %q (each sent once, with its body)", got, want)
	}
	if _, err := parseAddrs("vault:8200"); err == nil {
		t.Error("an address without a scheme was accepted")
	}
}

// A standby's redirect is followed to the active node as it is (body
// included), not sent back through the node list; a node that keeps
// redirecting is 503, never an empty success.
func TestStandbyRedirectFollowed(t *testing.T) {
	active := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write([]byte("active:" + r.URL.Path + ":" + string(b)))
	}))
	t.Cleanup(active.Close)
	standby := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, active.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(standby.Close)
	var looping *httptest.Server
	looping = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, looping.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(looping.Close)

	nodes, err := parseAddrs(standby.URL + "," + active.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: answers{next: &failover{next: http.DefaultTransport, nodes: nodes}, direct: http.DefaultTransport},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Post(standby.URL+"/v1/secret/data/x", "application/json", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "active:/v1/secret/data/x:body" {
		t.Errorf("through a standby: %d %q, want the active node's answer to the same request", resp.StatusCode, b)
	}

	c.Transport = answers{next: http.DefaultTransport, direct: http.DefaultTransport}
	resp, err = c.Get(looping.URL + "/v1/secret/data/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a node that keeps redirecting: %d, want 503", resp.StatusCode)
	}
}
