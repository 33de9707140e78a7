package cache

import (
	"testing"
	"time"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// Drop forgets every generation of one connection and nothing of another;
// an entry past its age is not fresh but still stale-servable.
func TestDropAndAge(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := New(time.Minute)
	c.now = func() time.Time { return now }
	rec := vault.Record{Connector: "stripe"}
	for _, k := range []string{"a", "a/g1", "a/g2", "ab/g1", "b/g1"} {
		c.Put(k, rec)
	}
	c.Drop("a/g2")
	for k, want := range map[string]bool{"a": false, "a/g1": false, "a/g2": false, "ab/g1": true, "b/g1": true} {
		if _, ok := c.Get(k); ok != want {
			t.Errorf("after dropping connection a: Get(%q) cached=%v, want %v", k, ok, want)
		}
	}
	now = now.Add(time.Minute)
	if _, ok := c.Get("b/g1"); ok {
		t.Error("an entry maxAge old is still fresh")
	}
	if _, ok := c.Stale("b/g1"); !ok {
		t.Error("an old entry is gone from Stale")
	}
	c.DropAll()
	if _, ok := c.Stale("b/g1"); ok {
		t.Error("DropAll left an entry")
	}
}

// Keep forgets the other generations and leaves the named one stale-only.
func TestKeep(t *testing.T) {
	c := New(time.Minute)
	rec := vault.Record{Connector: "stripe"}
	for _, k := range []string{"a/g1", "a/g2"} {
		c.Put(k, rec)
	}
	c.Keep("a", "g2")
	if _, ok := c.Stale("a/g1"); ok {
		t.Error("a generation the metadata no longer names is kept")
	}
	if _, ok := c.Get("a/g2"); ok {
		t.Error("the named generation is still fresh after a change")
	}
	if _, ok := c.Stale("a/g2"); !ok {
		t.Error("the named generation is gone from Stale")
	}
	c.Keep("b", "g1") // nothing cached: nothing to do
	if _, ok := c.Stale("b/g1"); ok {
		t.Error("Keep made an entry")
	}
}
