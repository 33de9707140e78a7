package api_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/pgtest"
	"github.com/integrationhub/connections/internal/privilege"

	"github.com/integrationhub/connections/services/connections/internal/store/storepostgres"
)

const benchRows = 100_000

// BenchmarkListConnections pages through 100,000 connections of one
// workspace on PostgreSQL through the whole gRPC stack (bufconn, JWT auth,
// protovalidate, handler, keyset query). The baseline, measured in the same
// run through the same server and interceptors, is ListConnectors with one
// result: a call that touches no database.
//
//	go test -run '^$' -bench ListConnections -benchtime 3x ./internal/api/
func BenchmarkListConnections(b *testing.B) {
	st, err := storepostgres.Open(b.Context(), pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	// Load the rows in one statement; 100k creates through the API would
	// measure the loader, not the lister.
	if _, err := st.DB().ExecContext(b.Context(), `
		INSERT INTO connections (id, workspace_id, name, connector, environment, auth_type, status, create_time, update_time, version)
		SELECT md5(i::text)::uuid::text, 'ws-bench', 'conn ' || i, CASE WHEN i % 3 = 0 THEN 'zendesk' ELSE 'http' END,
		       'production', 'api_key', 'active', 1700000000000000000 + i * 1000, 1700000000000000000 + i * 1000, 1
		FROM generate_series(1, $1) AS i`, benchRows); err != nil {
		b.Fatal(err)
	}
	// Half the connections have been used (a page reads their usage times).
	if _, err := st.DB().ExecContext(b.Context(), `
		INSERT INTO connection_usage (connection_id, last_use_time)
		SELECT md5(i::text)::uuid::text, 1700000000000000000 + i * 1000 FROM generate_series(1, $1, 2) AS i`, benchRows); err != nil {
		b.Fatal(err)
	}
	if _, err := st.DB().ExecContext(b.Context(), `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	ts := serveStore(b, st)
	ctx := ts.as(context.Background(), b, "ws-bench", privilege.ViewConnections)

	b.Run("baseline-ListConnectors", func(b *testing.B) {
		for b.Loop() {
			if _, err := ts.ListConnectors(ctx, &connectionsv1.ListConnectorsRequest{PageSize: 1}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, size := range []int32{100, 1000} {
		b.Run(fmt.Sprintf("full-scan-page-%d", size), func(b *testing.B) {
			var pages, rows int
			start := time.Now()
			for b.Loop() {
				req := &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws-bench", PageSize: size}
				for {
					resp, err := ts.ListConnections(ctx, req)
					if err != nil {
						b.Fatal(err)
					}
					pages++
					rows += len(resp.GetConnections())
					if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
						break
					}
				}
			}
			if rows != benchRows*b.N {
				b.Fatalf("paged through %d rows, want %d", rows, benchRows*b.N)
			}
			el := time.Since(start)
			b.ReportMetric(float64(el.Microseconds())/float64(pages), "µs/page")
			b.ReportMetric(float64(rows)/el.Seconds(), "rows/s")
		})
	}
	// The last page costs what the first does: keyset, not OFFSET.
	var deepToken string
	req := &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws-bench", PageSize: 1000}
	for range benchRows/1000 - 1 {
		resp, err := ts.ListConnections(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		req.PageToken = resp.GetNextPageToken()
	}
	deepToken = req.PageToken
	for name, tok := range map[string]string{"first-page-100": "", "last-page-100": deepToken} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := ts.ListConnections(ctx, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws-bench", PageSize: 100, PageToken: tok}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for name, req := range map[string]*connectionsv1.ListConnectionsRequest{
		"filtered-connector-page-100": {Connector: "zendesk"},
		// Name search: a text that 11% of the names hold, all among the
		// newest (found in the window of newest rows) or all among the
		// oldest (the worst case: found through the trigram index, every
		// match sorted); and one only a single connection holds.
		"filtered-name-recent-page-100": {NameContains: "CONN 9"},
		"filtered-name-old-page-100":    {NameContains: "CONN 1"},
		"filtered-name-rare-page-100":   {NameContains: "n 99999"},
		// The opt-in total: a count over every match of the filter.
		"filtered-connector-page-100-with-total": {Connector: "zendesk", IncludeTotalSize: true},
		"first-page-100-with-total":              {IncludeTotalSize: true},
	} {
		req.WorkspaceId, req.PageSize = "ws-bench", 100
		b.Run(name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := ts.ListConnections(ctx, req); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
