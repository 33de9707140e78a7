package storesql_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/integrationhub/connections/internal/pgtest"

	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storepostgres"
	"github.com/integrationhub/connections/services/connections/internal/store/storesqlite"
)

// outcome classifies a store error; anything but the documented errors
// fails the fuzz run.
func outcome(t *testing.T, what string, err error) string {
	t.Helper()
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrInvalidText):
		return "invalid text"
	case errors.Is(err, store.ErrInvalidPageToken):
		return "invalid page token"
	case errors.Is(err, store.ErrNotFound):
		return "not found"
	}
	t.Fatalf("%s: undocumented error %v", what, err)
	return ""
}

// Whatever text reaches the store (names, ids, filters, page tokens), SQLite
// and PostgreSQL answer alike: success with the text kept exactly, or a
// documented refusal (ErrInvalidText, ErrInvalidPageToken, ErrNotFound),
// never a database error and never a partial write. The seed corpus runs
// with every go test; `go test -fuzz FuzzStoreText` explores further.
func FuzzStoreText(f *testing.F) {
	for _, seed := range [][2]string{
		{"plain", ""},
		{"job\x00x", "MTcwMDAwMDAwMDAwMDAwMDAwMC9hAGI"},
		{"a\xff\xfeb", "MTcwMDAwMDAwMDAwMDAwMDAwMC9h_2I"},
		{"' OR 1=1 --", "!!"},
		{"\u00e9\u4e2d\U0001F600", "MTcwMDAwMDAwMDAwMDAwMDAwMC8"},
		{"\\x00", "LTEvYQ"},
	} {
		f.Add(seed[0], seed[1])
	}
	lite, err := storesqlite.Open(context.Background(), filepath.Join(f.TempDir(), "c.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { lite.Close() })
	pg, err := storepostgres.Open(context.Background(), pgtest.NewDatabase(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { pg.Close() })
	stores := map[string]store.Store{"sqlite": lite, "postgres": pg}

	f.Fuzz(func(t *testing.T, text, token string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got := map[string][]string{}
		for name, s := range stores {
			seq, err := s.LastEventSeq(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c := &store.Connection{ID: uuid.NewString(), WorkspaceID: "ws-fuzz", Name: text, Connector: "http",
				Environment: "production", AuthType: "api_key", Status: store.StatusActive, LastError: text,
				Instance: store.Instance{OrgID: text}}
			create := outcome(t, name+" Create", s.Create(ctx, "fuzzer", c))
			if create == "ok" {
				back, err := s.Get(ctx, c.ID)
				if err != nil || back.Name != text || back.LastError != text || back.Instance.OrgID != text {
					t.Fatalf("%s: %q did not round-trip: %+v, %v", name, text, back, err)
				}
			} else if after, _ := s.LastEventSeq(ctx); after != seq {
				t.Fatalf("%s: a refused Create wrote %d events", name, after-seq)
			}
			_, _, err = s.List(ctx, store.ListQuery{WorkspaceID: "ws-fuzz", PageSize: 2, PageToken: token, RuntimeUser: text})
			list := outcome(t, name+" List", err)
			_, err = s.AccessEvents(ctx, store.AccessQuery{JobID: text, RecipeID: text, Limit: 2})
			filter := outcome(t, name+" AccessEvents", err)
			ev := store.AccessEvent{WorkspaceID: "ws-fuzz", Operation: "GetCredential", JobID: text, Reason: text,
				Decision: store.AccessDenied, Code: "OK", Count: 1, FirstTime: time.Now(), LastTime: time.Now()}
			record := outcome(t, name+" RecordAccess", s.RecordAccess(ctx, "", []store.AccessEvent{ev}))
			_, err = s.GetWorkspace(ctx, text)
			ws := outcome(t, name+" GetWorkspace", err)
			_, err = s.Events(ctx, store.EventQuery{Actor: text, Limit: 2})
			events := outcome(t, name+" Events", err)
			got[name] = []string{create, list, filter, record, ws, events}
		}
		for i := range got["sqlite"] {
			if got["sqlite"][i] != got["postgres"][i] {
				t.Fatalf("the stores disagree on %q / %q: sqlite %v, postgres %v", text, token, got["sqlite"], got["postgres"])
			}
		}
	})
}
