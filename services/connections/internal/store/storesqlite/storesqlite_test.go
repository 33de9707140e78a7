package storesqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storesqlite"
	"github.com/integrationhub/connections/services/connections/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := storesqlite.Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// Reopening a database keeps its rows and runs no migration twice.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := storesqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	c := &store.Connection{ID: "6c1b4d3e-0000-4000-8000-000000000001", WorkspaceID: "ws", Name: "n", Connector: "http",
		Environment: "production", AuthType: "basic", Status: store.StatusActive}
	if err := s.Create(t.Context(), "tester", c); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = storesqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.Get(t.Context(), c.ID); err != nil {
		t.Errorf("Get after reopen: %v", err)
	}
}
