// Package storetest is the conformance suite every store.Store implementation
// must pass. Each implementation's tests call Run with a constructor that
// returns an empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

// Run runs the suite; newStore must return an empty store for each call.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"GetMissing", testGetMissing},
		{"ListPagesNewestFirst", testListPages},
		{"ListFilters", testListFilters},
		{"ListBadToken", testListBadToken},
		{"UpdateVersions", testUpdateVersions},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"UpdateChangeError", testUpdateChangeError},
		{"Delete", testDelete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// sample returns a connection with every field set.
func sample(ws string) *store.Connection {
	return &store.Connection{
		ID:                 uuid.NewString(),
		WorkspaceID:        ws,
		ProjectID:          "proj-1",
		Name:               "Zendesk support",
		Connector:          "zendesk",
		Environment:        "production",
		AuthType:           "basic",
		Instance:           store.Instance{BaseURL: "https://acme.zendesk.com", Subdomain: "acme", OrgID: "org-9", Sandbox: true},
		Status:             store.StatusActive,
		StatusReason:       "revoked",
		LastError:          "401 from provider",
		LastVerifyTime:     time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		AuthorizedAs:       "agent@acme.test",
		GrantedScopes:      []string{"read", "write"},
		Owner:              "user-1",
		ParentConnectionID: "",
		RuntimeUser:        "",
	}
}

func mustCreate(t *testing.T, s store.Store, c *store.Connection) *store.Connection {
	t.Helper()
	if err := s.Create(ctx(t), c); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

func testCreateGet(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws"))
	if c.Version != 1 || c.CreateTime.IsZero() || !c.UpdateTime.Equal(c.CreateTime) {
		t.Errorf("Create set version %d, create %v, update %v; want 1 and equal times", c.Version, c.CreateTime, c.UpdateTime)
	}
	got, err := s.Get(ctx(t), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got, cmpopts.EquateApproxTime(time.Microsecond)); diff != "" {
		t.Errorf("Get (-created +got):\n%s", diff)
	}
}

func testGetMissing(t *testing.T, s store.Store) {
	if _, err := s.Get(ctx(t), uuid.NewString()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a missing id: %v, want ErrNotFound", err)
	}
}

func testListPages(t *testing.T, s store.Store) {
	var want []string
	for i := range 25 {
		c := sample("ws-list")
		c.Name = fmt.Sprint("c", i)
		mustCreate(t, s, c)
		want = append([]string{c.ID}, want...) // newest first
	}
	mustCreate(t, s, sample("other-ws"))
	for _, size := range []int{1, 7, 25, 100} {
		t.Run(fmt.Sprint("size", size), func(t *testing.T) {
			var got []string
			tok := ""
			for pages := 0; ; pages++ {
				if pages > 30 {
					t.Fatal("paging does not end")
				}
				cs, next, err := s.List(ctx(t), store.ListQuery{WorkspaceID: "ws-list", PageSize: size, PageToken: tok})
				if err != nil {
					t.Fatal(err)
				}
				if len(cs) > size {
					t.Fatalf("page of %d, want at most %d", len(cs), size)
				}
				for _, c := range cs {
					got = append(got, c.ID)
				}
				if next == "" {
					break
				}
				tok = next
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ids over all pages (-want +got):\n%s", diff)
			}
		})
	}
}

func testListFilters(t *testing.T, s store.Store) {
	a := sample("ws-f")
	b := sample("ws-f")
	b.Connector, b.Status, b.Environment = "stripe", store.StatusInvalid, "sandbox"
	mustCreate(t, s, a)
	mustCreate(t, s, b)
	tests := []struct {
		name string
		q    store.ListQuery
		want []string
	}{
		{"connector", store.ListQuery{Connector: "stripe"}, []string{b.ID}},
		{"status", store.ListQuery{Status: store.StatusActive}, []string{a.ID}},
		{"environment", store.ListQuery{Environment: "sandbox"}, []string{b.ID}},
		{"all together", store.ListQuery{Connector: "zendesk", Status: store.StatusActive, Environment: "production"}, []string{a.ID}},
		{"none match", store.ListQuery{Connector: "slack"}, nil},
		{"no filter", store.ListQuery{}, []string{b.ID, a.ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.WorkspaceID, tt.q.PageSize = "ws-f", 10
			cs, _, err := s.List(ctx(t), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cs {
				got = append(got, c.ID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func testListBadToken(t *testing.T, s store.Store) {
	for _, tok := range []string{"!!", "bm90LWEtdG9rZW4", store.PageToken{ID: ""}.Encode()} {
		if _, _, err := s.List(ctx(t), store.ListQuery{WorkspaceID: "ws", PageSize: 5, PageToken: tok}); !errors.Is(err, store.ErrInvalidPageToken) {
			t.Errorf("List with token %q: %v, want ErrInvalidPageToken", tok, err)
		}
	}
}

func testUpdateVersions(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws"))
	u, err := s.Update(ctx(t), c.ID, c.Version, func(c *store.Connection) error {
		c.Name = "renamed"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != c.Version+1 || u.Name != "renamed" || !u.UpdateTime.After(c.UpdateTime) || !u.CreateTime.Equal(c.CreateTime) {
		t.Errorf("Update = version %d name %q; want version %d, the new name, a later update time and the same create time", u.Version, u.Name, c.Version+1)
	}
	// The version read first is stale now.
	if _, err := s.Update(ctx(t), c.ID, c.Version, func(c *store.Connection) error { c.Name = "lost"; return nil }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update with a stale version: %v, want ErrConflict", err)
	}
	if got, _ := s.Get(ctx(t), c.ID); got.Name != "renamed" {
		t.Errorf("a refused update changed the name to %q", got.Name)
	}
	// Version 0 means unconditional.
	if _, err := s.Update(ctx(t), c.ID, 0, func(c *store.Connection) error { c.Status = store.StatusInvalid; return nil }); err != nil {
		t.Errorf("unconditional Update: %v", err)
	}
	if _, err := s.Update(ctx(t), uuid.NewString(), 0, func(*store.Connection) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update of a missing id: %v, want ErrNotFound", err)
	}
}

// Two editors holding the same version: exactly one wins.
func testUpdateConcurrent(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws"))
	const editors = 8
	var wg sync.WaitGroup
	errs := make([]error, editors)
	for i := range editors {
		wg.Go(func() {
			_, errs[i] = s.Update(ctx(t), c.ID, c.Version, func(c *store.Connection) error {
				c.Name = fmt.Sprint("editor", i)
				return nil
			})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("concurrent Update: %v, want success or ErrConflict", err)
		}
	}
	if won != 1 {
		t.Errorf("%d editors succeeded with the same version, want exactly 1", won)
	}
}

func testUpdateChangeError(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws"))
	boom := errors.New("boom")
	if _, err := s.Update(ctx(t), c.ID, 0, func(c *store.Connection) error { c.Name = "half"; return boom }); !errors.Is(err, boom) {
		t.Errorf("Update whose change fails: %v, want the change's error", err)
	}
	if got, _ := s.Get(ctx(t), c.ID); got.Name != c.Name || got.Version != c.Version {
		t.Errorf("a failed change was stored: name %q version %d", got.Name, got.Version)
	}
}

func testDelete(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws"))
	if err := s.Delete(ctx(t), c.ID, c.Version+1); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Delete with a wrong version: %v, want ErrConflict", err)
	}
	if err := s.Delete(ctx(t), c.ID, c.Version); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx(t), c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx(t), c.ID, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
}
