package storesql_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/integrationhub/connections/internal/pgtest"

	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storepostgres"
	"github.com/integrationhub/connections/services/connections/internal/store/storesql"
	"github.com/integrationhub/connections/services/connections/internal/store/storesqlite"
)

// A name search pages exactly as a brute-force filter of the newest-first
// order would, whether a page is found among the newest rows (the window,
// made small here) or only by searching the whole workspace, on both stores.
func TestNameSearchAcrossTheWindow(t *testing.T) {
	defer storesql.SetNameWindow(1)()
	lite, err := storesqlite.Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	pg, err := storepostgres.Open(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	for name, s := range map[string]store.Store{"sqlite": lite, "postgres": pg} {
		t.Run(name, func(t *testing.T) {
			var newestFirst []*store.Connection
			for i := range 60 {
				c := &store.Connection{ID: uuid.NewString(), WorkspaceID: "ws-n", Name: fmt.Sprintf("conn %d", i),
					Connector: "http", Environment: "production", AuthType: "api_key", Status: store.StatusActive}
				if i%7 == 0 || (i > 40 && i%2 == 0) { // sparse among the oldest, dense among the newest
					c.Name += " Needle"
				}
				if err := s.Create(context.Background(), "test", c); err != nil {
					t.Fatal(err)
				}
				newestFirst = append([]*store.Connection{c}, newestFirst...)
			}
			for _, text := range []string{"needle", "NEEDLE", "conn 1", "nothing"} {
				var want []string
				for _, c := range newestFirst {
					if strings.Contains(strings.ToLower(c.Name), strings.ToLower(text)) {
						want = append(want, c.ID)
					}
				}
				for _, size := range []int{1, 2, 5, 100} {
					var got []string
					tok := ""
					for pages := 0; ; pages++ {
						if pages > 100 {
							t.Fatal("paging does not end")
						}
						cs, next, err := s.List(context.Background(), store.ListQuery{WorkspaceID: "ws-n", PageSize: size,
							PageToken: tok, NameContains: text})
						if err != nil {
							t.Fatal(err)
						}
						for _, c := range cs {
							got = append(got, c.ID)
						}
						if tok = next; tok == "" {
							break
						}
					}
					if !slices.Equal(got, want) {
						t.Errorf("%q, pages of %d: %d ids, want %d in newest-first order", text, size, len(got), len(want))
					}
				}
			}
		})
	}
}
