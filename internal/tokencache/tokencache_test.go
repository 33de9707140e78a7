package tokencache

import (
	"fmt"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		expires time.Time
		at      time.Time
		hit     bool
	}{
		{"before expiry", now.Add(time.Minute), now, true},
		{"at expiry", now.Add(time.Minute), now.Add(time.Minute), false},
		{"after expiry", now.Add(time.Minute), now.Add(time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New[int](10)
			c.Put("tok", 7, tc.expires, now)
			v, ok := c.Get("tok", tc.at)
			if ok != tc.hit || (ok && v != 7) {
				t.Fatalf("Get = %d, %t; want hit %t", v, ok, tc.hit)
			}
			if _, ok := c.Get("other", now); ok {
				t.Fatal("a token never stored was found")
			}
		})
	}
}

// Past its size the cache first drops expired tokens, and forgets all only
// when most are still live; it never grows without bound.
func TestCacheBounded(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	c := New[int](100)
	for i := range 100 {
		c.Put(fmt.Sprint("old", i), i, now.Add(time.Second), now)
	}
	later := now.Add(time.Minute)
	c.Put("new", 1, later.Add(time.Minute), later) // sweeps the 100 expired
	if _, ok := c.Get("new", later); !ok {
		t.Fatal("the newest token is gone")
	}
	if n := c.n.Load(); n > 2 {
		t.Fatalf("after the sweep %d counted, want the live ones only", n)
	}
	for i := range 1000 {
		c.Put(fmt.Sprint("live", i), i, later.Add(time.Hour), later)
	}
	size := 0
	c.m.Range(func(any, any) bool { size++; return true })
	if size > 100 {
		t.Fatalf("%d tokens held, bound 100", size)
	}
	c.Put("forgotten", 1, later.Add(time.Hour), later)
	c.Forget("forgotten")
	if _, ok := c.Get("forgotten", later); ok {
		t.Fatal("a forgotten token is still found")
	}
}
