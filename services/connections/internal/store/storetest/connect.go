package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

func testConnectSessions(t *testing.T, s store.Store) {
	now := time.Now()
	cs := &store.ConnectSession{TokenHash: "h1", WorkspaceID: "ws", Subject: "platform", Privileges: []string{"connections:create", "connections:view"},
		Connectors: []string{"github", "zendesk"}, ProjectID: "p", Environment: "production", BindRecipeID: "r", BindStep: "s",
		ReturnURL: "https://platform.example.com/back", ExpireTime: now.Add(time.Minute)}
	if err := s.CreateConnectSession(ctx(t), cs); err != nil {
		t.Fatal(err)
	}
	got, err := s.ConnectSession(ctx(t), "h1", now, false)
	if err != nil || got.Subject != "platform" || !slices.Equal(got.Privileges, cs.Privileges) || !slices.Equal(got.Connectors, cs.Connectors) ||
		got.ProjectID != "p" || got.BindStep != "s" || got.ReturnURL != cs.ReturnURL || got.Attempts != 0 || got.Used {
		t.Fatalf("ConnectSession = %+v, %v", got, err)
	}
	for i := 1; i <= 2; i++ {
		if got, err := s.ConnectSession(ctx(t), "h1", now, true); err != nil || got.Attempts != i {
			t.Fatalf("attempt %d: %+v, %v", i, got, err)
		}
	}
	if _, err := s.ConnectSession(ctx(t), "h1", now.Add(time.Minute), false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an expired session: %v, want ErrNotFound", err)
	}
	if _, err := s.ConnectSession(ctx(t), "nope", now, false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown session: %v, want ErrNotFound", err)
	}
	if err := s.UseConnectSession(ctx(t), "h1", true); err != nil {
		t.Fatal(err)
	}
	if err := s.UseConnectSession(ctx(t), "h1", true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a second use: %v, want ErrNotFound", err)
	}
	if err := s.UseConnectSession(ctx(t), "h1", false); err != nil {
		t.Fatalf("releasing a failed use: %v", err)
	}
	if _, err := s.ConnectSession(ctx(t), "h1", now, false); err != nil {
		t.Errorf("a released session: %v", err)
	}
	if err := s.UseConnectSession(ctx(t), "h1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConnectSession(ctx(t), "h1", now, false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a used session: %v, want ErrNotFound", err)
	}
}
