package storepostgres_test

import (
	"testing"

	"github.com/integrationhub/connections/internal/pgtest"

	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storepostgres"
	"github.com/integrationhub/connections/services/connections/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := storepostgres.Open(t.Context(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// Replicas starting together migrate the same database safely.
func TestConcurrentMigrations(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			s, err := storepostgres.Open(t.Context(), dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
}
