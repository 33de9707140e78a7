package vaultproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/integrationhub/connections/internal/loopback"
)

// Cluster is a Vault cluster on integrated (raft) storage, one process per
// node on loopback, initialised with one unseal key, as production runs
// Vault in HA. Tests kill, step down and restart its nodes.
type Cluster struct {
	Nodes []*Persistent
	Token string // root token
}

// StartCluster starts n raft nodes with their data in dir: the first is
// initialised and unsealed, the others join it (retry_join) and are
// unsealed; KV v2 is mounted at secret/ (as dev mode does).
func StartCluster(ctx context.Context, dir string, n int, logs io.Writer) (*Cluster, error) {
	addrs, err := loopback.FreeAddrs(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for i := range n {
		api, cluster := addrs[2*i], addrs[2*i+1]
		join := ""
		if i > 0 {
			join = fmt.Sprintf("retry_join { leader_api_addr = \"http://%s\" }", addrs[0])
		}
		ndir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(filepath.Join(ndir, "raft"), 0o700); err != nil {
			return nil, err
		}
		cfg := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = "node%d"
  %s
}
listener "tcp" {
  address         = %q
  cluster_address = %q
  tls_disable     = true
}
disable_mlock = true
api_addr      = "http://%s"
cluster_addr  = "https://%s"
`, filepath.Join(ndir, "raft"), i, join, api, cluster, api, cluster)
		if err := os.WriteFile(filepath.Join(ndir, "vault.hcl"), []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, &Persistent{Server: &Server{Addr: "http://" + api}, dir: ndir, logs: logs})
	}
	fail := func(err error) (*Cluster, error) {
		c.Stop()
		return nil, fmt.Errorf("vaultproc.StartCluster: %w", err)
	}
	first := c.Nodes[0]
	if err := first.start(ctx); err != nil {
		return fail(err)
	}
	var init struct {
		Keys      []string `json:"keys"`
		RootToken string   `json:"root_token"`
	}
	if err := first.call(ctx, http.MethodPut, "/v1/sys/init", "", map[string]any{"secret_shares": 1, "secret_threshold": 1}, &init); err != nil {
		return fail(fmt.Errorf("init: %w", err))
	}
	c.Token = init.RootToken
	for _, p := range c.Nodes {
		p.unsealKey, p.Token = init.Keys[0], init.RootToken
	}
	if err := first.unseal(ctx); err != nil {
		return fail(err)
	}
	for _, p := range c.Nodes[1:] {
		if err := p.start(ctx); err != nil {
			return fail(err)
		}
		if err := p.unsealJoined(ctx); err != nil {
			return fail(err)
		}
	}
	if err := first.call(ctx, http.MethodPost, "/v1/sys/mounts/secret", c.Token,
		map[string]any{"type": "kv", "options": map[string]string{"version": "2"}}, nil); err != nil {
		return fail(fmt.Errorf("mount kv: %w", err))
	}
	if err := c.waitVoters(ctx, n); err != nil {
		return fail(err)
	}
	return c, nil
}

// waitVoters waits until n nodes vote in raft: autopilot promotes a joined
// node only after it has been stable for a while, and a cluster whose
// leader dies before that has no quorum.
func (c *Cluster) waitVoters(ctx context.Context, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var cfg struct {
			Data struct {
				Config struct {
					Servers []struct {
						Voter bool `json:"voter"`
					} `json:"servers"`
				} `json:"config"`
			} `json:"data"`
		}
		voters := 0
		if err := c.Nodes[0].call(ctx, http.MethodGet, "/v1/sys/storage/raft/configuration", c.Token, nil, &cfg); err == nil {
			for _, s := range cfg.Data.Config.Servers {
				if s.Voter {
					voters++
				}
			}
		}
		if voters >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vaultproc: %d of %d raft voters after 2 minutes", voters, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// unsealJoined unseals a node that joins the cluster: until it has joined,
// unsealing is refused or leaves it sealed, so it is tried again.
func (p *Persistent) unsealJoined(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		var st struct {
			Sealed bool `json:"sealed"`
		}
		err := p.call(ctx, http.MethodPut, "/v1/sys/unseal", "", map[string]any{"key": p.unsealKey}, &st)
		if err == nil && !st.Sealed {
			return p.waitUnsealed(ctx, 90*time.Second)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vaultproc: %s did not join and unseal: %v", p.Addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitUnsealed waits until a node reports it is unsealed (a standby answers
// /sys/health with 429, the active node with 200).
func (p *Persistent) waitUnsealed(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.Addr+"/v1/sys/health?standbyok=true", nil)
		if resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vaultproc: %s not unsealed in time", p.Addr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Addrs is every node's address, comma-separated (the broker's -vault-addr
// for a cluster without a leader-following address).
func (c *Cluster) Addrs() string {
	var a []string
	for _, p := range c.Nodes {
		a = append(a, p.Addr)
	}
	return strings.Join(a, ",")
}

// Leader returns the index of the active node among the nodes given
// (every node when none is) and when it became active, which tells a new
// term of the same node from the old one.
func (c *Cluster) Leader(ctx context.Context, among ...int) (int, time.Time, error) {
	if len(among) == 0 {
		for i := range c.Nodes {
			among = append(among, i)
		}
	}
	for _, i := range among {
		var l struct {
			IsSelf     bool      `json:"is_self"`
			ActiveTime time.Time `json:"active_time"`
		}
		if err := c.Nodes[i].call(ctx, http.MethodGet, "/v1/sys/leader", "", nil, &l); err == nil && l.IsSelf {
			return i, l.ActiveTime, nil
		}
	}
	return -1, time.Time{}, errors.New("vaultproc: no active node")
}

// StepDown asks node i (the active one) to give up leadership.
func (c *Cluster) StepDown(ctx context.Context, i int) error {
	return c.Nodes[i].call(ctx, http.MethodPut, "/v1/sys/step-down", c.Token, nil, nil)
}

// Kill ends node i at once (SIGKILL), as a crash would.
func (c *Cluster) Kill(i int) {
	p := c.Nodes[i]
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Stop stops every node.
func (c *Cluster) Stop() {
	for _, p := range c.Nodes {
		if p.cmd != nil {
			_ = p.Stop()
		}
	}
}
