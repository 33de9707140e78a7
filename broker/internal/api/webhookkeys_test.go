package api

import (
	"fmt"
	"testing"
)

// The kept signing keys stay bounded, a delete drops a webhook's keys, and
// a key read before a delete ended is not kept.
func TestWebhookKeys(t *testing.T) {
	c := newWebhookKeys()
	for i := range maxWebhookKeys + 50 {
		_, _, e := c.get(fmt.Sprint("w", i%100), fmt.Sprint("g", i))
		c.put(fmt.Sprint("w", i%100), fmt.Sprint("g", i), []byte{1}, e)
	}
	total := 0
	for _, gens := range c.byID {
		total += len(gens)
	}
	if c.n != maxWebhookKeys || total != maxWebhookKeys {
		t.Errorf("kept %d (counted %d), want the bound %d", total, c.n, maxWebhookKeys)
	}

	c = newWebhookKeys()
	_, _, e := c.get("w", "g1")
	c.put("w", "g1", []byte{1}, e)
	_, _, before := c.get("w", "g2") // a read of g2 begins ...
	c.drop("w")                      // ... a delete ends ...
	c.put("w", "g2", []byte{2}, before)
	if _, ok, _ := c.get("w", "g1"); ok {
		t.Error("a dropped key is still kept")
	}
	if _, ok, _ := c.get("w", "g2"); ok {
		t.Error("a key read before a delete ended is kept")
	}
	if c.n != 0 {
		t.Errorf("count %d after dropping everything, want 0", c.n)
	}
}
