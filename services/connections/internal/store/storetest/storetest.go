// Package storetest is the conformance suite every store.Store implementation
// must pass. Each implementation's tests call Run with a constructor that
// returns an empty store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
		{"RuntimeUserConnections", testRuntimeUsers},
		{"ListRuntimeUserFilter", testListRuntimeUser},
		{"Recipes", testRecipes},
		{"RecipeRuntimeUserFallback", testRecipeFallback},
		{"BindUnbindUsage", testBindings},
		{"BindCheckAborts", testBindCheckAborts},
		{"CreateBoundAllOrNothing", testCreateBound},
		{"DeleteInUse", testDeleteInUse},
		{"EventsAuditEveryChange", testEvents},
		{"EventsFollowerMissesNone", testEventsFollower},
		{"Workspaces", testWorkspaces},
		{"CrossEnvironmentBindings", testCrossEnvironmentBindings},
		{"CrossEnvironmentOffRacesBind", testCrossEnvironmentOffRacesBind},
		{"OAuthClientIDs", testOAuthClients},
		{"AuthStatesSingleUse", testAuthStates},
		{"AccessEventsRoundTrip", testAccessRoundTrip},
		{"AccessBatchRecordedOnce", testAccessBatchOnce},
		{"AccessEventsFilters", testAccessFilters},
		{"AccessEventsPages", testAccessPages},
		{"AccessEventsPrune", testAccessPrune},
		{"LastUse", testLastUse},
		{"DueForCheck", testDueForCheck},
		{"SecretGenerationNeedsIntent", testGenerationNeedsIntent},
		{"SecretInUse", testSecretInUse},
		{"DeleteTombstones", testDeleteTombstones},
		{"TombstoneRefusesBindAndChild", testTombstoneRefuses},
		{"LeaderRuns", testLeader},
		{"Webhooks", testWebhooks},
		{"WebhookOutbox", testWebhookOutbox},
		{"ConnectSessions", testConnectSessions},
		{"BadTextRefused", testBadText},
		{"BadTextPageTokens", testBadTextPageTokens},
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
	if err := s.Create(ctx(t), "tester", c); err != nil {
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
	b.Name, b.ProjectID, b.Owner, b.AuthType = `Stripe 100%_billing\EU`, "", "user-2", "api_key"
	mustCreate(t, s, a)
	mustCreate(t, s, b)
	tests := []struct {
		name string
		q    store.ListQuery
		want []string
	}{
		{"connector", store.ListQuery{Connector: "stripe"}, []string{b.ID}},
		{"project", store.ListQuery{ProjectID: "proj-1", HasProject: true}, []string{a.ID}},
		{"workspace root", store.ListQuery{HasProject: true}, []string{b.ID}},
		{"owner", store.ListQuery{Owner: "user-2"}, []string{b.ID}},
		{"auth type", store.ListQuery{AuthType: "basic"}, []string{a.ID}},
		{"name, ignoring case", store.ListQuery{NameContains: "SUPPORT"}, []string{a.ID}},
		{"name, in the middle", store.ListQuery{NameContains: "desk sup"}, []string{a.ID}},
		{"name: % matches itself", store.ListQuery{NameContains: "100%_b"}, []string{b.ID}},
		{"name: % is no wildcard", store.ListQuery{NameContains: "Zen%port"}, nil},
		{"name: _ is no wildcard", store.ListQuery{NameContains: "Zendesk_support"}, nil},
		{"name: the escape character matches itself", store.ListQuery{NameContains: `g\e`}, []string{b.ID}},
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
			// The count matches what the pages hold, whatever the page size.
			tt.q.PageSize = 1
			if n, err := s.Count(ctx(t), tt.q); err != nil || n != int64(len(tt.want)) {
				t.Errorf("Count = %d, %v; want %d", n, err, len(tt.want))
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
	u, err := s.Update(ctx(t), "tester", c.ID, c.Version, func(c *store.Connection) error {
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
	if _, err := s.Update(ctx(t), "tester", c.ID, c.Version, func(c *store.Connection) error { c.Name = "lost"; return nil }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update with a stale version: %v, want ErrConflict", err)
	}
	if got, _ := s.Get(ctx(t), c.ID); got.Name != "renamed" {
		t.Errorf("a refused update changed the name to %q", got.Name)
	}
	// Version 0 means unconditional.
	if _, err := s.Update(ctx(t), "tester", c.ID, 0, func(c *store.Connection) error { c.Status = store.StatusInvalid; return nil }); err != nil {
		t.Errorf("unconditional Update: %v", err)
	}
	if _, err := s.Update(ctx(t), "tester", uuid.NewString(), 0, func(*store.Connection) error { return nil }); !errors.Is(err, store.ErrNotFound) {
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
			_, errs[i] = s.Update(ctx(t), "tester", c.ID, c.Version, func(c *store.Connection) error {
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
	if _, err := s.Update(ctx(t), "tester", c.ID, 0, func(c *store.Connection) error { c.Name = "half"; return boom }); !errors.Is(err, boom) {
		t.Errorf("Update whose change fails: %v, want the change's error", err)
	}
	if got, _ := s.Get(ctx(t), c.ID); got.Name != c.Name || got.Version != c.Version {
		t.Errorf("a failed change was stored: name %q version %d", got.Name, got.Version)
	}
}

func testDelete(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws"))
	if _, err := s.Delete(ctx(t), "tester", c.ID, c.Version+1, false); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Delete with a wrong version: %v, want ErrConflict", err)
	}
	if _, err := s.Delete(ctx(t), "tester", c.ID, c.Version, false); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx(t), c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, err := s.Delete(ctx(t), "tester", c.ID, 0, false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
}

func child(parent *store.Connection, user string) *store.Connection {
	c := sample(parent.WorkspaceID)
	c.ParentConnectionID, c.RuntimeUser = parent.ID, user
	return c
}

func testRuntimeUsers(t *testing.T, s store.Store) {
	parent := mustCreate(t, s, sample("ws-ru"))
	alice := mustCreate(t, s, child(parent, "alice"))
	mustCreate(t, s, child(parent, "bob"))
	if err := s.Create(ctx(t), "tester", child(parent, "alice")); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("second connection for alice: %v, want ErrAlreadyExists", err)
	}
	got, err := s.GetRuntimeUserConnection(ctx(t), parent.ID, "alice")
	if err != nil || got.ID != alice.ID {
		t.Errorf("GetRuntimeUserConnection = %v, %v; want alice's", got, err)
	}
	if _, err := s.GetRuntimeUserConnection(ctx(t), parent.ID, "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("carol's connection: %v, want ErrNotFound", err)
	}
	// Children are listed under their parent, not with the workspace's connections.
	top, _, err := s.List(ctx(t), store.ListQuery{WorkspaceID: "ws-ru", PageSize: 10})
	if err != nil || len(top) != 1 || top[0].ID != parent.ID {
		t.Errorf("workspace list = %d connections, %v; want the parent only", len(top), err)
	}
	kids, _, err := s.List(ctx(t), store.ListQuery{WorkspaceID: "ws-ru", ParentConnectionID: parent.ID, PageSize: 10})
	if err != nil || len(kids) != 2 {
		t.Errorf("children = %d, %v; want 2", len(kids), err)
	}
	// Deleting the parent deletes its children.
	if _, err := s.Delete(ctx(t), "tester", parent.ID, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx(t), alice.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("child after parent delete: %v, want ErrNotFound", err)
	}
}

func testListRuntimeUser(t *testing.T, s store.Store) {
	parent := mustCreate(t, s, sample("ws-ruf"))
	other := mustCreate(t, s, sample("ws-ruf"))
	mustCreate(t, s, child(parent, "alice"))
	mustCreate(t, s, child(parent, "bob"))
	mustCreate(t, s, child(other, "alice"))
	tests := []struct {
		name string
		user string
		want []string // runtime users
	}{
		{"one user", "alice", []string{"alice"}},
		{"user without a connection", "carol", nil},
		{"no filter", "", []string{"bob", "alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, next, err := s.List(ctx(t), store.ListQuery{WorkspaceID: "ws-ruf", ParentConnectionID: parent.ID,
				RuntimeUser: tt.user, PageSize: 10})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cs {
				if c.ParentConnectionID != parent.ID {
					t.Errorf("%s's connection under another parent", c.RuntimeUser)
				}
				got = append(got, c.RuntimeUser)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || next != "" {
				t.Errorf("next page %q; (-want +got):\n%s", next, diff)
			}
		})
	}
	// A runtime user alone: that user's connections under every parent
	// of the workspace, and none of the parents.
	cs, _, err := s.List(ctx(t), store.ListQuery{WorkspaceID: "ws-ruf", RuntimeUser: "alice", PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	parents := map[string]bool{}
	for _, c := range cs {
		if c.RuntimeUser != "alice" || c.ParentConnectionID == "" {
			t.Errorf("runtime user filter returned %+v", c)
		}
		parents[c.ParentConnectionID] = true
	}
	if len(cs) != 2 || !parents[parent.ID] || !parents[other.ID] {
		t.Errorf("alice's connections: %d under %v, want 2, one under each parent", len(cs), parents)
	}
}

func recipe(id, ws, env string) *store.Recipe {
	return &store.Recipe{ID: id, WorkspaceID: ws, Name: "r " + id, Environment: env}
}

func testRecipes(t *testing.T, s store.Store) {
	r := recipe("r-1", "ws", "production")
	if err := s.PutRecipe(ctx(t), "tester", r); err != nil {
		t.Fatal(err)
	}
	created := r.CreateTime
	r2 := recipe("r-1", "ws", "production")
	r2.Callable, r2.RuntimeUserConnections = true, true
	if err := s.PutRecipe(ctx(t), "tester", r2); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRecipe(ctx(t), "r-1")
	if err != nil || !got.Callable || !got.RuntimeUserConnections || !got.CreateTime.Equal(created) {
		t.Errorf("GetRecipe = %+v, %v; want the replacement with the first create time", got, err)
	}
	if _, err := s.GetRecipe(ctx(t), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing recipe: %v, want ErrNotFound", err)
	}
}

func testRecipeFallback(t *testing.T, s store.Store) {
	r := recipe("r-fb", "ws", "production")
	r.Callable, r.RuntimeUserConnections, r.RuntimeUserFallback = true, true, true
	if err := s.PutRecipe(ctx(t), "tester", r); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRecipe(ctx(t), "r-fb")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got, cmpopts.EquateApproxTime(time.Microsecond)); diff != "" {
		t.Errorf("GetRecipe (-put +got):\n%s", diff)
	}
	// Replacing the recipe turns the fallback off again.
	r.RuntimeUserFallback = false
	if err := s.PutRecipe(ctx(t), "tester", r); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRecipe(ctx(t), "r-fb"); err != nil || got.RuntimeUserFallback {
		t.Errorf("GetRecipe after turning the fallback off = %+v, %v", got, err)
	}
}

func allow(*store.Workspace, *store.Recipe, *store.Connection, []store.BindingView) error { return nil }

func testBindings(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws"))
	for _, id := range []string{"r-a", "r-b"} {
		if err := s.PutRecipe(ctx(t), "tester", recipe(id, "ws", "production")); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []store.Binding{{RecipeID: "r-a", Step: "trigger", ConnectionID: c.ID},
		{RecipeID: "r-a", Step: "action-1", ConnectionID: c.ID}, {RecipeID: "r-b", Step: "trigger", ConnectionID: c.ID}} {
		if err := s.Bind(ctx(t), "tester", b, allow); err != nil {
			t.Fatalf("Bind %+v: %v", b, err)
		}
	}
	usage, err := s.Usage(ctx(t), c.ID)
	if err != nil || len(usage) != 3 {
		t.Fatalf("Usage = %d bindings, %v; want 3", len(usage), err)
	}
	var seen []store.BindingView
	other := mustCreate(t, s, sample("ws"))
	// Rebinding a step replaces its connection; check sees the recipe's other steps.
	if err := s.Bind(ctx(t), "tester", store.Binding{RecipeID: "r-a", Step: "trigger", ConnectionID: other.ID},
		func(_ *store.Workspace, _ *store.Recipe, _ *store.Connection, others []store.BindingView) error {
			seen = others
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].Step != "action-1" || seen[0].Connection.ID != c.ID {
		t.Errorf("check saw %+v; want the action-1 binding with its connection", seen)
	}
	if err := s.Unbind(ctx(t), "tester", "r-a", "action-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unbind(ctx(t), "tester", "r-a", "action-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Unbind: %v, want ErrNotFound", err)
	}
	bs, _ := s.RecipeBindings(ctx(t), "r-a")
	if len(bs) != 1 || bs[0].ConnectionID != other.ID {
		t.Errorf("r-a bindings = %+v; want trigger -> the other connection", bs)
	}
	if err := s.Bind(ctx(t), "tester", store.Binding{RecipeID: "missing", Step: "s", ConnectionID: c.ID}, allow); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Bind to a missing recipe: %v, want ErrNotFound", err)
	}
	if err := s.Bind(ctx(t), "tester", store.Binding{RecipeID: "r-a", Step: "s", ConnectionID: uuid.NewString()}, allow); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Bind of a missing connection: %v, want ErrNotFound", err)
	}
}

// CreateBound creates and binds in one transaction: both are recorded, in
// order; a refused check or a missing recipe leaves no connection, binding
// or event behind.
func testCreateBound(t *testing.T, s store.Store) {
	if err := s.PutRecipe(ctx(t), "tester", recipe("r-cb", "ws-cb", "production")); err != nil {
		t.Fatal(err)
	}
	c := sample("ws-cb")
	if err := s.CreateBound(ctx(t), "maker", c, store.Binding{RecipeID: "r-cb", Step: "trigger"}, allow); err != nil {
		t.Fatal(err)
	}
	if usage, err := s.Usage(ctx(t), c.ID); err != nil || len(usage) != 1 || usage[0].RecipeID != "r-cb" || usage[0].Step != "trigger" {
		t.Fatalf("usage of the created connection: %+v, %v", usage, err)
	}
	refused := errors.New("refused by the rules")
	for name, tc := range map[string]struct {
		b     store.Binding
		check func(*store.Workspace, *store.Recipe, *store.Connection, []store.BindingView) error
	}{
		"check refuses": {store.Binding{RecipeID: "r-cb", Step: "action"},
			func(*store.Workspace, *store.Recipe, *store.Connection, []store.BindingView) error { return refused }},
		"missing recipe": {store.Binding{RecipeID: "r-none", Step: "trigger"}, allow},
	} {
		t.Run(name, func(t *testing.T) {
			c := sample("ws-cb")
			err := s.CreateBound(ctx(t), "maker", c, tc.b, tc.check)
			if err == nil || (tc.b.RecipeID == "r-cb" && !errors.Is(err, refused)) || (tc.b.RecipeID == "r-none" && !errors.Is(err, store.ErrNotFound)) {
				t.Fatalf("CreateBound: %v, want the refusal", err)
			}
			if _, err := s.Get(ctx(t), c.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the connection exists after a refused CreateBound: %v", err)
			}
		})
	}
	evs, err := s.Events(ctx(t), store.EventQuery{WorkspaceID: "ws-cb", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Actor+" "+e.Action)
	}
	if want := []string{"tester recipe.put", "maker connection.create", "maker binding.create"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v (nothing from the refused ones)", got, want)
	}
}

func testBindCheckAborts(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws"))
	if err := s.PutRecipe(ctx(t), "tester", recipe("r", "ws", "production")); err != nil {
		t.Fatal(err)
	}
	no := errors.New("rule says no")
	if err := s.Bind(ctx(t), "tester", store.Binding{RecipeID: "r", Step: "s", ConnectionID: c.ID},
		func(*store.Workspace, *store.Recipe, *store.Connection, []store.BindingView) error { return no }); !errors.Is(err, no) {
		t.Errorf("Bind = %v, want the check's error", err)
	}
	if bs, _ := s.Usage(ctx(t), c.ID); len(bs) != 0 {
		t.Errorf("a refused bind was stored: %+v", bs)
	}
}

func testDeleteInUse(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws"))
	if err := s.PutRecipe(ctx(t), "tester", recipe("r-used", "ws", "production")); err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(ctx(t), "tester", store.Binding{RecipeID: "r-used", Step: "trigger", ConnectionID: c.ID}, allow); err != nil {
		t.Fatal(err)
	}
	var inUse *store.InUseError
	if _, err := s.Delete(ctx(t), "tester", c.ID, 0, false); !errors.As(err, &inUse) || len(inUse.Bindings) != 1 || inUse.Bindings[0].RecipeID != "r-used" {
		t.Fatalf("Delete of a used connection: %v, want InUseError naming r-used", err)
	}
	if _, err := s.Get(ctx(t), c.ID); err != nil {
		t.Errorf("refused delete removed the connection: %v", err)
	}
	if _, err := s.Delete(ctx(t), "tester", c.ID, 0, true); err != nil {
		t.Fatalf("forced Delete: %v", err)
	}
	if bs, _ := s.RecipeBindings(ctx(t), "r-used"); len(bs) != 0 {
		t.Errorf("forced delete left bindings: %+v", bs)
	}
}

func testEvents(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws-ev"))
	if _, err := s.Update(ctx(t), "editor", c.ID, 0, func(c *store.Connection) error { c.Name = "after"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx(t), "deleter", c.ID, 0, false); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, sample("other-ws"))
	evs, err := s.Events(ctx(t), store.EventQuery{WorkspaceID: "ws-ev", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Actor+" "+e.Action)
	}
	want := []string{"tester connection.create", "editor connection.update", "deleter connection.delete"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	if !(evs[0].Seq < evs[1].Seq && evs[1].Seq < evs[2].Seq) {
		t.Errorf("sequence numbers not increasing: %d %d %d", evs[0].Seq, evs[1].Seq, evs[2].Seq)
	}
	var before, after store.Connection
	if err := json.Unmarshal([]byte(evs[1].Before), &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(evs[1].After), &after); err != nil {
		t.Fatal(err)
	}
	if before.Name != "Zendesk support" || after.Name != "after" {
		t.Errorf("update event before/after names = %q/%q", before.Name, after.Name)
	}
	// Filters and resuming.
	byActor, _ := s.Events(ctx(t), store.EventQuery{WorkspaceID: "ws-ev", Actor: "editor", Limit: 10})
	rest, _ := s.Events(ctx(t), store.EventQuery{WorkspaceID: "ws-ev", AfterSeq: evs[0].Seq, Limit: 10})
	byConn, _ := s.Events(ctx(t), store.EventQuery{ConnectionID: c.ID, Limit: 10})
	future, _ := s.Events(ctx(t), store.EventQuery{WorkspaceID: "ws-ev", Since: time.Now().Add(time.Hour), Limit: 10})
	if len(byActor) != 1 || len(rest) != 2 || len(byConn) != 3 || len(future) != 0 {
		t.Errorf("filtered events: actor %d, after-seq %d, connection %d, future %d; want 1, 2, 3, 0",
			len(byActor), len(rest), len(byConn), len(future))
	}
	if last, err := s.LastEventSeq(ctx(t)); err != nil || last < evs[2].Seq {
		t.Errorf("LastEventSeq = %d, %v; want at least %d", last, err, evs[2].Seq)
	}
	all, _ := s.Events(ctx(t), store.EventQuery{Limit: 100})
	if len(all) < 4 {
		t.Errorf("events across workspaces = %d, want at least 4", len(all))
	}
}

// testEventsFollower follows the events of a workspace as a change stream
// does (each read resumes after the highest sequence number seen) while
// writers commit concurrently: it must see every event. An event whose
// sequence number is drawn before another's but commits after it would be
// skipped for good.
func testEventsFollower(t *testing.T, s store.Store) {
	const writers, each = 8, 40
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				if err := s.Create(ctx(t), "tester", sample("ws-follow")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[int64]bool{}
	var after int64
	follow := func() {
		evs, err := s.Events(ctx(t), store.EventQuery{WorkspaceID: "ws-follow", AfterSeq: after, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			seen[e.Seq] = true
			after = max(after, e.Seq)
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		follow()
	}
	follow() // what committed after the last read
	all, err := s.Events(ctx(t), store.EventQuery{WorkspaceID: "ws-follow", Limit: 10 * writers * each})
	if err != nil {
		t.Fatal(err)
	}
	missed := 0
	for _, e := range all {
		if !seen[e.Seq] {
			missed++
		}
	}
	if len(all) != writers*each || missed > 0 {
		t.Errorf("%d events stored (want %d); the follower missed %d of them", len(all), writers*each, missed)
	}
}

func testWorkspaces(t *testing.T, s store.Store) {
	w, err := s.GetWorkspace(ctx(t), "ws-new")
	if err != nil || w.AllowCrossEnvironment {
		t.Fatalf("default workspace = %+v, %v; want cross-environment off", w, err)
	}
	origins := []string{"https://app.example.com", "http://localhost:8080"}
	if err := s.PutWorkspace(ctx(t), "tester", &store.Workspace{ID: "ws-new", AllowCrossEnvironment: true, AllowedOrigins: origins}); err != nil {
		t.Fatal(err)
	}
	if w, _ := s.GetWorkspace(ctx(t), "ws-new"); !w.AllowCrossEnvironment || !slices.Equal(w.AllowedOrigins, origins) {
		t.Errorf("settings not kept: %+v", w)
	}
}

// putClient registers clientID as the live generation gen of connector's
// registration for workspace, through an intent as the write protocol does.
func putClient(t *testing.T, s store.Store, connector, workspace, gen, clientID string) string {
	t.Helper()
	k := store.ClientKey{Connector: connector, WorkspaceID: workspace, Generation: gen}
	if err := s.BeginSecretWrite(ctx(t), k.Intent(), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	prev, err := s.PutOAuthClient(ctx(t), "tester", k, clientID)
	if err != nil {
		t.Fatal(err)
	}
	return prev
}

func testOAuthClients(t *testing.T, s store.Store) {
	if _, err := s.OAuthClient(ctx(t), "zendesk", "ws", true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no client registered: %v, want ErrNotFound", err)
	}
	// Without its intent a generation cannot become live.
	if _, err := s.PutOAuthClient(ctx(t), "tester", store.ClientKey{Connector: "zendesk", Generation: "g0"}, "x"); !errors.Is(err, store.ErrIntentGone) {
		t.Errorf("PutOAuthClient without an intent: %v, want ErrIntentGone", err)
	}
	if prev := putClient(t, s, "zendesk", "", "g1", "platform-app"); prev != "" {
		t.Errorf("first registration replaced %q", prev)
	}
	if c, err := s.OAuthClient(ctx(t), "zendesk", "ws", true); err != nil || c.ClientID != "platform-app" || c.WorkspaceID != "" || c.Generation != "g1" {
		t.Errorf("OAuthClient = %+v, %v; want the platform's, generation g1", c, err)
	}
	if _, err := s.OAuthClient(ctx(t), "zendesk", "ws", false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("exact lookup of a workspace without its own app: %v, want ErrNotFound", err)
	}
	putClient(t, s, "zendesk", "ws", "g2", "customer-app")
	if c, _ := s.OAuthClient(ctx(t), "zendesk", "ws", true); c == nil || c.ClientID != "customer-app" || c.WorkspaceID != "ws" {
		t.Errorf("OAuthClient = %+v; want the workspace's own app first", c)
	}
	if c, _ := s.OAuthClient(ctx(t), "zendesk", "other-ws", true); c == nil || c.ClientID != "platform-app" {
		t.Errorf("another workspace got %+v, want the platform's app", c)
	}
	if prev := putClient(t, s, "zendesk", "", "g3", "platform-app-2"); prev != "g1" {
		t.Errorf("re-registration replaced %q, want g1", prev)
	}

	now := time.Now()
	held := store.ClientKey{Connector: "zendesk", Generation: "g4"}
	if err := s.BeginSecretWrite(ctx(t), held.Intent(), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	late := store.ClientKey{Connector: "zendesk", Generation: "g5"}
	if err := s.BeginSecretWrite(ctx(t), late.Intent(), now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		k    store.ClientKey
		want bool
	}{
		{store.ClientKey{Connector: "zendesk", Generation: "g3"}, true},                    // named
		{store.ClientKey{Connector: "zendesk", WorkspaceID: "ws", Generation: "g2"}, true}, // named
		{store.ClientKey{Connector: "zendesk", Generation: "g1"}, false},                   // replaced
		{store.ClientKey{Connector: "zendesk", WorkspaceID: "ws", Generation: "g1"}, false},
		{held, true},  // a write in progress
		{late, false}, // its intent expired: reaped
	} {
		if got, err := s.ClientSecretInUse(ctx(t), c.k, now, true); err != nil || got != c.want {
			t.Errorf("ClientSecretInUse(%+v) = %v, %v; want %v", c.k, got, err, c.want)
		}
	}
	// The reaped intent's writer can no longer commit.
	if _, err := s.PutOAuthClient(ctx(t), "tester", late, "late-app"); !errors.Is(err, store.ErrIntentGone) {
		t.Errorf("commit after the intent was reaped: %v, want ErrIntentGone", err)
	}
	if c, _ := s.OAuthClient(ctx(t), "zendesk", "", false); c == nil || c.Generation != "g3" {
		t.Errorf("live registration = %+v, want g3", c)
	}
}

func testAuthStates(t *testing.T, s store.Store) {
	now := time.Now()
	live := &store.AuthState{StateHash: "h1", ConnectionID: uuid.NewString(), Subject: "alice", Scopes: []string{"read", "write"},
		RedirectURI: "https://cb.test/oauth2/callback", ExpireTime: now.Add(time.Minute),
		BindRecipeID: "r-1", BindStep: "trigger", ReturnURL: "https://app.example.com/done?x=1"}
	old := &store.AuthState{StateHash: "h2", ConnectionID: uuid.NewString(), Subject: "bob", RedirectURI: "x", ExpireTime: now.Add(-time.Second)}
	for _, a := range []*store.AuthState{live, old} {
		if err := s.CreateAuthState(ctx(t), a); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ConsumeAuthState(ctx(t), "h1", now)
	if err != nil || got.ConnectionID != live.ConnectionID || got.Subject != "alice" || len(got.Scopes) != 2 ||
		got.BindRecipeID != "r-1" || got.BindStep != "trigger" || got.ReturnURL != live.ReturnURL {
		t.Fatalf("ConsumeAuthState = %+v, %v", got, err)
	}
	if _, err := s.ConsumeAuthState(ctx(t), "h1", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second use: %v, want ErrNotFound", err)
	}
	if _, err := s.ConsumeAuthState(ctx(t), "h2", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired state: %v, want ErrNotFound", err)
	}
	if _, err := s.ConsumeAuthState(ctx(t), "never-issued", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("forged state: %v, want ErrNotFound", err)
	}
}

// access returns an access event with every field set.
func access(ws, job string) store.AccessEvent {
	first := time.Date(2026, 3, 4, 5, 6, 7, 8000, time.UTC)
	return store.AccessEvent{
		WorkspaceID:           ws,
		Operation:             "GetCredential",
		JobID:                 job,
		RecipeID:              "r-1",
		RequestedConnectionID: uuid.NewString(),
		ResolvedConnectionID:  uuid.NewString(),
		RuntimeUser:           "alice",
		Decision:              store.AccessAllowed,
		Code:                  "OK",
		Reason:                "",
		Count:                 3,
		FirstTime:             first,
		LastTime:              first.Add(time.Minute),
		Broker:                "broker-0",
	}
}

func mustRecord(t *testing.T, s store.Store, evs ...store.AccessEvent) []store.AccessEvent {
	t.Helper()
	if err := s.RecordAccess(ctx(t), "", evs); err != nil {
		t.Fatalf("RecordAccess: %v", err)
	}
	return evs
}

func testAccessRoundTrip(t *testing.T, s store.Store) {
	in := access("ws", "job-1")
	in.Seq = 999_999 // ignored: the store numbers events
	recorded := mustRecord(t, s, in, access("ws", "job-2"))
	if recorded[0].Seq == 999_999 || recorded[0].Seq >= recorded[1].Seq || recorded[0].RecordTime.IsZero() {
		t.Errorf("RecordAccess set seq %d, %d and record time %v; want increasing store-assigned seqs and a time",
			recorded[0].Seq, recorded[1].Seq, recorded[0].RecordTime)
	}
	got, err := s.AccessEvents(ctx(t), store.AccessQuery{WorkspaceID: "ws", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(recorded, got, cmpopts.EquateApproxTime(time.Microsecond)); diff != "" {
		t.Errorf("AccessEvents (-recorded +got):\n%s", diff)
	}
}

// A batch sent again under its id (its answer was lost) is acknowledged and
// stored once, also when the two sends race; a batch without an id, or
// under another id, is stored again; pruning forgets old ids.
func testAccessBatchOnce(t *testing.T, s store.Store) {
	count := func() int {
		t.Helper()
		got, err := s.AccessEvents(ctx(t), store.AccessQuery{WorkspaceID: "ws-batch", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = s.RecordAccess(ctx(t), "run-1", []store.AccessEvent{access("ws-batch", "job-1")}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("send %d of batch run-1: %v, want it acknowledged", i, err)
		}
	}
	if n := count(); n != 1 {
		t.Fatalf("batch run-1 sent 4 times: %d events stored, want 1", n)
	}
	if err := s.RecordAccess(ctx(t), "run-2", []store.AccessEvent{access("ws-batch", "job-1")}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAccess(ctx(t), "", []store.AccessEvent{access("ws-batch", "job-1")}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 3 {
		t.Fatalf("after batches run-2 and one without an id: %d events, want 3", n)
	}
	if _, err := s.PruneAccessEvents(ctx(t), time.Now().Add(time.Hour), 1000); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAccess(ctx(t), "run-1", []store.AccessEvent{access("ws-batch", "job-1")}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("after pruning, batch run-1 again: %d events, want 1 (its id was forgotten with its events)", n)
	}
}

func testAccessFilters(t *testing.T, s store.Store) {
	a := access("ws-a", "job-1")
	b := access("ws-a", "job-2")
	b.RecipeID, b.Decision, b.Code, b.Reason, b.ResolvedConnectionID = "r-2", store.AccessDenied, "PermissionDenied", "not bound", ""
	swapped := access("ws-a", "job-3") // a runtime user's connection served a's request
	swapped.RequestedConnectionID, swapped.ResolvedConnectionID = b.RequestedConnectionID, a.ResolvedConnectionID
	other := access("ws-b", "job-4")
	unknown := access("", "")
	unknown.Decision, unknown.Code, unknown.ResolvedConnectionID = store.AccessDenied, "Unauthenticated", ""
	mustRecord(t, s, a, b, swapped, other, unknown)
	tests := []struct {
		name string
		q    store.AccessQuery
		want []string // job ids
	}{
		{"workspace", store.AccessQuery{WorkspaceID: "ws-a"}, []string{"job-1", "job-2", "job-3"}},
		{"every workspace", store.AccessQuery{}, []string{"job-1", "job-2", "job-3", "job-4", ""}},
		{"requested connection", store.AccessQuery{ConnectionID: b.RequestedConnectionID}, []string{"job-2", "job-3"}},
		{"resolved connection", store.AccessQuery{ConnectionID: a.ResolvedConnectionID}, []string{"job-1", "job-3"}},
		{"recipe", store.AccessQuery{WorkspaceID: "ws-a", RecipeID: "r-2"}, []string{"job-2"}},
		{"job", store.AccessQuery{JobID: "job-4"}, []string{"job-4"}},
		{"denied", store.AccessQuery{Decision: store.AccessDenied}, []string{"job-2", ""}},
		{"allowed in a workspace", store.AccessQuery{WorkspaceID: "ws-a", Decision: store.AccessAllowed}, []string{"job-1", "job-3"}},
		{"none match", store.AccessQuery{WorkspaceID: "ws-b", RecipeID: "r-2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Limit = 10
			evs, err := s.AccessEvents(ctx(t), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range evs {
				got = append(got, e.JobID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func testAccessPages(t *testing.T, s store.Store) {
	var batch []store.AccessEvent
	for i := range 25 {
		batch = append(batch, access("ws-p", fmt.Sprint("job-", i)))
	}
	recorded := mustRecord(t, s, batch...)
	mustRecord(t, s, access("ws-other", "job-x"))
	var want []int64
	for _, e := range recorded {
		want = append(want, e.Seq)
	}
	for _, size := range []int{1, 7, 25, 100} {
		t.Run(fmt.Sprint("size", size), func(t *testing.T) {
			var got []int64
			var after int64
			for pages := 0; ; pages++ {
				if pages > 30 {
					t.Fatal("paging does not end")
				}
				evs, err := s.AccessEvents(ctx(t), store.AccessQuery{WorkspaceID: "ws-p", AfterSeq: after, Limit: size})
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) > size {
					t.Fatalf("page of %d, want at most %d", len(evs), size)
				}
				for _, e := range evs {
					got = append(got, e.Seq)
				}
				if len(evs) < size {
					break
				}
				after = evs[len(evs)-1].Seq
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("seqs over all pages (-want +got):\n%s", diff)
			}
		})
	}
}

// Pruning deletes events whose last time is before the cutoff, whatever
// their first time, workspace or order of recording, at most limit a call,
// and keeps the rest.
// An allowed access moves its connection's last use, to the minute and never
// backwards; a denied one, a batch sent again and another connection's
// accesses do not; the purge of a deleted connection takes it along.
func testLastUse(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws-use"))
	other := mustCreate(t, s, sample("ws-use"))
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	use := func(id, decision string, last time.Time) store.AccessEvent {
		e := access("ws-use", "j")
		e.ResolvedConnectionID, e.Decision, e.LastTime = id, decision, last
		return e
	}
	// activity reads c's usage times as Get and List return them (both
	// must agree), and checks that other's stay zero.
	activity := func() store.Activity {
		t.Helper()
		got, err := s.Get(ctx(t), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		page, _, err := s.List(ctx(t), store.ListQuery{WorkspaceID: "ws-use", PageSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]store.Activity{}
		for _, l := range page {
			listed[l.ID] = l.Activity
		}
		if listed[c.ID] != got.Activity {
			t.Errorf("List says %+v, Get %+v", listed[c.ID], got.Activity)
		}
		if (listed[other.ID] != store.Activity{}) {
			t.Errorf("a connection nobody used has activity: %+v", listed[other.ID])
		}
		return got.Activity
	}
	lastUse := func() (time.Time, bool) {
		t.Helper()
		u := activity().LastUse
		return u, !u.IsZero()
	}
	if _, ok := lastUse(); ok {
		t.Fatal("a new connection has a last use")
	}
	mustRecord(t, s, use(c.ID, store.AccessAllowed, at), use(c.ID, store.AccessAllowed, at.Add(-time.Hour)))
	if got, ok := lastUse(); !ok || !got.Equal(at.Truncate(time.Minute)) {
		t.Errorf("last use %v (%t), want %v (the later access, to the minute)", got, ok, at.Truncate(time.Minute))
	}
	// Older and denied accesses leave it where it is.
	mustRecord(t, s, use(c.ID, store.AccessAllowed, at.Add(-24*time.Hour)), use(c.ID, store.AccessDenied, at.Add(time.Hour)))
	if got, _ := lastUse(); !got.Equal(at.Truncate(time.Minute)) {
		t.Errorf("after an older and a denied access: %v, want %v", got, at.Truncate(time.Minute))
	}
	later := at.Add(3 * time.Minute)
	if err := s.RecordAccess(ctx(t), "batch-use", []store.AccessEvent{use(c.ID, store.AccessAllowed, later)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := lastUse(); !got.Equal(later.Truncate(time.Minute)) {
		t.Errorf("after a later access: %v, want %v", got, later.Truncate(time.Minute))
	}
	if err := s.RecordAccess(ctx(t), "batch-use", []store.AccessEvent{use(c.ID, store.AccessAllowed, later.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if got, _ := lastUse(); !got.Equal(later.Truncate(time.Minute)) {
		t.Errorf("a batch sent again moved the last use to %v", got)
	}
	// Token refreshes: recorded beside the use, never backwards.
	refreshed, expires := at.Add(time.Hour), at.Add(2*time.Hour)
	for _, r := range []struct{ at, exp time.Time }{{refreshed, expires}, {at, at.Add(time.Hour)}} {
		if err := s.RecordRefresh(ctx(t), c.ID, r.at, r.exp); err != nil {
			t.Fatal(err)
		}
	}
	if a := activity(); !a.LastRefresh.Equal(refreshed) || !a.TokenExpiry.Equal(expires) ||
		!a.LastUse.Equal(later.Truncate(time.Minute)) {
		t.Errorf("activity after two refreshes (the second older): %+v", a)
	}
	if _, err := s.Delete(ctx(t), "test", c.ID, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx(t), c.ID); err != nil {
		t.Fatal(err)
	}
	// The purge took the usage row along: the same id made again starts
	// with no activity.
	again := sample("ws-use")
	again.ID = c.ID
	mustCreate(t, s, again)
	if got, err := s.Get(ctx(t), c.ID); err != nil || (got.Activity != store.Activity{}) {
		t.Errorf("after the purge: %+v, %v; want no activity", got, err)
	}
}

func testAccessPrune(t *testing.T, s store.Store) {
	cutoff := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	event := func(ws, job string, last time.Time) store.AccessEvent {
		e := access(ws, job)
		e.FirstTime, e.LastTime = last.Add(-48*time.Hour), last
		return e
	}
	mustRecord(t, s,
		event("ws-a", "recent", cutoff.Add(time.Hour)),
		event("ws-a", "old-1", cutoff.Add(-30*24*time.Hour)),
		event("ws-b", "old-2", cutoff.Add(-time.Hour)),
		event("", "old-3", cutoff.Add(-time.Nanosecond)), // the broker could not tell the workspace
		event("ws-a", "at-cutoff", cutoff),
		event("ws-b", "old-4", cutoff.Add(-24*time.Hour)),
	)
	mustRecord(t, s, event("ws-a", "old-5", cutoff.Add(-time.Minute))) // a late batch
	// Each step runs on what the previous ones left.
	steps := []struct {
		name   string
		before time.Time
		limit  int
		want   int64
		left   []string // job ids, in the order recorded
	}{
		{"nothing before the oldest", cutoff.Add(-31 * 24 * time.Hour), 10, 0,
			[]string{"recent", "old-1", "old-2", "old-3", "at-cutoff", "old-4", "old-5"}},
		{"limit respected, first recorded first", cutoff, 2, 2,
			[]string{"recent", "old-3", "at-cutoff", "old-4", "old-5"}},
		{"limit respected again", cutoff, 2, 2, []string{"recent", "at-cutoff", "old-5"}},
		{"fewer than the limit: the last old one", cutoff, 2, 1, []string{"recent", "at-cutoff"}},
		{"nothing left to prune", cutoff, 2, 0, []string{"recent", "at-cutoff"}},
		{"a later cutoff reaches the next", cutoff.Add(time.Nanosecond), 10_000, 1, []string{"recent"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			n, err := s.PruneAccessEvents(ctx(t), st.before, st.limit)
			if err != nil || n != st.want {
				t.Errorf("PruneAccessEvents(%v, %d) = %d, %v; want %d deleted", st.before, st.limit, n, err, st.want)
			}
			evs, err := s.AccessEvents(ctx(t), store.AccessQuery{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, e := range evs {
				left = append(left, e.JobID)
			}
			if diff := cmp.Diff(st.left, left); diff != "" {
				t.Errorf("events left (-want +got):\n%s", diff)
			}
		})
	}
	for _, limit := range []int{0, -1} {
		if n, err := s.PruneAccessEvents(ctx(t), cutoff.Add(24*time.Hour), limit); err == nil || n != 0 {
			t.Errorf("PruneAccessEvents with limit %d = %d, %v; want an error and nothing deleted", limit, n, err)
		}
	}
	if evs, _ := s.AccessEvents(ctx(t), store.AccessQuery{Limit: 100}); len(evs) != 1 {
		t.Errorf("%d events left after refused prunes, want 1", len(evs))
	}
}

func testGenerationNeedsIntent(t *testing.T, s store.Store) {
	// A create naming a generation without an intent stores nothing.
	c := sample("ws-gen")
	c.SecretGeneration = "g1"
	if err := s.Create(ctx(t), "tester", c); !errors.Is(err, store.ErrIntentGone) {
		t.Fatalf("Create without intent: %v, want ErrIntentGone", err)
	}
	if _, err := s.Get(ctx(t), c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused create left a row: %v", err)
	}
	evs, err := s.Events(ctx(t), store.EventQuery{ConnectionID: c.ID, Limit: 10})
	if err != nil || len(evs) != 0 {
		t.Fatalf("refused create left %d events (%v)", len(evs), err)
	}
	exp := time.Now().Add(time.Minute)
	if err := s.BeginSecretWrite(ctx(t), store.SecretKey{ConnectionID: c.ID, Generation: "g1"}, exp); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, c)
	got, err := s.Get(ctx(t), c.ID)
	if err != nil || got.SecretGeneration != "g1" {
		t.Fatalf("Get = %+v, %v; want generation g1", got, err)
	}
	// The intent was consumed: a second commit of another generation needs its own.
	_, err = s.Update(ctx(t), "tester", c.ID, 0, func(c *store.Connection) error { c.SecretGeneration = "g2"; return nil })
	if !errors.Is(err, store.ErrIntentGone) {
		t.Fatalf("Update to g2 without intent: %v, want ErrIntentGone", err)
	}
	k2 := store.SecretKey{ConnectionID: c.ID, Generation: "g2"}
	if err := s.BeginSecretWrite(ctx(t), k2, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.EndSecretWrite(ctx(t), k2); err != nil {
		t.Fatal(err)
	}
	_, err = s.Update(ctx(t), "tester", c.ID, 0, func(c *store.Connection) error { c.SecretGeneration = "g2"; return nil })
	if !errors.Is(err, store.ErrIntentGone) {
		t.Fatalf("Update after EndSecretWrite: %v, want ErrIntentGone", err)
	}
	if err := s.BeginSecretWrite(ctx(t), k2, exp); err != nil {
		t.Fatal(err)
	}
	got, err = s.Update(ctx(t), "tester", c.ID, 0, func(c *store.Connection) error { c.SecretGeneration = "g2"; return nil })
	if err != nil || got.SecretGeneration != "g2" {
		t.Fatalf("Update with intent = %+v, %v", got, err)
	}
}

func testSecretInUse(t *testing.T, s store.Store) {
	c := sample("ws-inuse")
	now := time.Now()
	k1 := store.SecretKey{ConnectionID: c.ID, Generation: "g1"}
	if err := s.BeginSecretWrite(ctx(t), k1, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if in, err := s.SecretInUse(ctx(t), k1, now, true); err != nil || !in {
		t.Fatalf("generation with an unexpired intent: in use %v, %v; want true", in, err)
	}
	if n, err := s.PendingIntents(ctx(t), now); err != nil || n < 1 {
		t.Fatalf("PendingIntents = %d, %v; want at least 1", n, err)
	}
	c.SecretGeneration = "g1"
	mustCreate(t, s, c)
	if in, err := s.SecretInUse(ctx(t), k1, now, true); err != nil || !in {
		t.Fatalf("live generation: in use %v, %v; want true", in, err)
	}
	// An expired intent is removed, so that its writer cannot commit.
	k2 := store.SecretKey{ConnectionID: c.ID, Generation: "g2"}
	if err := s.BeginSecretWrite(ctx(t), k2, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if in, err := s.SecretInUse(ctx(t), k2, now.Add(2*time.Second), false); err != nil || in {
		t.Fatalf("expired intent (no reaping): in use %v, %v; want false", in, err)
	}
	if n, err := s.ReapIntents(ctx(t), now.Add(2*time.Second), true); err != nil || n < 1 {
		t.Fatalf("a dry SecretInUse removed the expired intent: %d, %v", n, err)
	}
	if in, err := s.SecretInUse(ctx(t), k2, now.Add(2*time.Second), true); err != nil || in {
		t.Fatalf("expired intent: in use %v, %v; want false", in, err)
	}
	if _, err := s.Update(ctx(t), "tester", c.ID, 0, func(c *store.Connection) error { c.SecretGeneration = "g2"; return nil }); !errors.Is(err, store.ErrIntentGone) {
		t.Fatalf("commit after the reconciler expired the intent: %v, want ErrIntentGone", err)
	}
	if in, err := s.SecretInUse(ctx(t), store.SecretKey{ConnectionID: c.ID, Generation: "g3"}, now, true); err != nil || in {
		t.Fatalf("unknown generation: in use %v, %v; want false", in, err)
	}
	k4 := store.SecretKey{ConnectionID: "other", Generation: "g4"}
	if err := s.BeginSecretWrite(ctx(t), k4, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ReapIntents(ctx(t), now.Add(2*time.Second), true); err != nil || n < 1 {
		t.Fatalf("ReapIntents dry run = %d, %v", n, err)
	}
	if n, err := s.ReapIntents(ctx(t), now.Add(2*time.Second), false); err != nil || n < 1 {
		t.Fatalf("ReapIntents = %d, %v", n, err)
	}
	if n, _ := s.ReapIntents(ctx(t), now.Add(2*time.Second), true); n != 0 {
		t.Fatalf("ReapIntents left %d", n)
	}
	// Once deleted, the live generation is no longer in use.
	if _, err := s.Delete(ctx(t), "tester", c.ID, 0, true); err != nil {
		t.Fatal(err)
	}
	if in, err := s.SecretInUse(ctx(t), k1, now, true); err != nil || in {
		t.Fatalf("generation of a tombstoned connection: in use %v, %v; want false", in, err)
	}
}

func testDeleteTombstones(t *testing.T, s store.Store) {
	parent := mustCreate(t, s, sample("ws-tomb"))
	kid := mustCreate(t, s, child(parent, "alice"))
	gone, err := s.Delete(ctx(t), "tester", parent.ID, 0, false)
	if err != nil || len(gone) != 2 {
		t.Fatalf("Delete = %d connections, %v; want 2", len(gone), err)
	}
	if _, err := s.Update(ctx(t), "tester", parent.ID, 0, func(c *store.Connection) error { c.Name = "x"; return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update of a tombstone: %v, want ErrNotFound", err)
	}
	var tomb []string
	for after := ""; ; {
		cs, err := s.Scan(ctx(t), after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 {
			break
		}
		for _, c := range cs {
			if c.State == store.StateDeleting && (c.ID == parent.ID || c.ID == kid.ID) {
				tomb = append(tomb, c.ID)
			}
		}
		after = cs[len(cs)-1].ID
	}
	if len(tomb) != 2 {
		t.Fatalf("Scan found %d tombstones, want 2", len(tomb))
	}
	evs, err := s.Events(ctx(t), store.EventQuery{ConnectionID: parent.ID, Limit: 10})
	if err != nil || evs[len(evs)-1].Action != store.ActionConnectionDelete {
		t.Fatalf("delete event missing: %v %v", evs, err)
	}
	if err := s.Purge(ctx(t), parent.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx(t), parent.ID); err != nil {
		t.Fatalf("second Purge: %v", err)
	}
	cs, err := s.Scan(ctx(t), "", 100000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.ID == parent.ID || c.ID == kid.ID {
			t.Fatalf("%s still stored after Purge", c.ID)
		}
	}
}

func testTombstoneRefuses(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws-tomb2"))
	r := &store.Recipe{ID: "r-" + c.ID[:8], WorkspaceID: "ws-tomb2", Environment: "production"}
	if err := s.PutRecipe(ctx(t), "tester", r); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx(t), "tester", c.ID, 0, false); err != nil {
		t.Fatal(err)
	}
	ok := func(*store.Workspace, *store.Recipe, *store.Connection, []store.BindingView) error { return nil }
	if err := s.Bind(ctx(t), "tester", store.Binding{RecipeID: r.ID, Step: "s1", ConnectionID: c.ID}, ok); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Bind to a tombstone: %v, want ErrNotFound", err)
	}
	if err := s.Create(ctx(t), "tester", child(c, "bob")); !errors.Is(err, store.ErrParentGone) {
		t.Errorf("child of a tombstone: %v, want ErrParentGone", err)
	}
}

func testLeader(t *testing.T, s store.Store) {
	ran, err := s.Leader(ctx(t), store.LockReconciler, func(context.Context) error { return nil })
	if err != nil || !ran {
		t.Fatalf("Leader = %v, %v; want it to run with nobody else holding the lock", ran, err)
	}
	// Nested: the lock is held, so a second taker does not run; another
	// lock is independent of it.
	var inner, other bool
	_, err = s.Leader(ctx(t), store.LockReconciler, func(ctx context.Context) error {
		if inner, err = s.Leader(ctx, store.LockReconciler, func(context.Context) error { return nil }); err != nil {
			return err
		}
		other, err = s.Leader(ctx, store.LockWebhooks, func(context.Context) error { return nil })
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !other {
		t.Error("the webhooks lock was refused while only the reconciler's was held")
	}
	t.Logf("nested leader ran: %v (true only where one process is the only leader, SQLite)", inner)
}

// badTexts are strings no database keeps alike: PostgreSQL refuses a NUL
// byte, SQLite stores it; invalid UTF-8 is not text at all.
var badTexts = map[string]string{"NUL": "job\x00x", "invalid UTF-8": "a\xff\xfeb"}

// Every method refuses bad text with ErrInvalidText, on every store alike,
// and changes nothing.
func testBadText(t *testing.T, s store.Store) {
	c := mustCreate(t, s, sample("ws"))
	mustRecord(t, s, access("ws", "job-1"))
	if err := s.PutRecipe(ctx(t), "tester", recipe("r-1", "ws", "production")); err != nil {
		t.Fatal(err)
	}
	seq, err := s.LastEventSeq(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range badTexts {
		calls := []struct {
			name string
			call func() error
		}{
			{"Create.Name", func() error { x := sample("ws"); x.Name = bad; return s.Create(ctx(t), "tester", x) }},
			{"Create.Instance.OrgID", func() error { x := sample("ws"); x.Instance.OrgID = bad; return s.Create(ctx(t), "tester", x) }},
			{"Create.RuntimeUser", func() error { x := child(c, bad); return s.Create(ctx(t), "tester", x) }},
			{"Create actor", func() error { return s.Create(ctx(t), bad, sample("ws")) }},
			{"Get", func() error { _, err := s.Get(ctx(t), bad); return err }},
			{"GetRuntimeUserConnection", func() error { _, err := s.GetRuntimeUserConnection(ctx(t), c.ID, bad); return err }},
			{"List.RuntimeUser", func() error {
				_, _, err := s.List(ctx(t), store.ListQuery{WorkspaceID: "ws", ParentConnectionID: c.ID, RuntimeUser: bad, PageSize: 5})
				return err
			}},
			{"List.WorkspaceID", func() error { _, _, err := s.List(ctx(t), store.ListQuery{WorkspaceID: bad, PageSize: 5}); return err }},
			{"Update.LastError", func() error {
				_, err := s.Update(ctx(t), "tester", c.ID, 0, func(c *store.Connection) error { c.LastError = bad; return nil })
				return err
			}},
			{"Update.GrantedScopes", func() error {
				_, err := s.Update(ctx(t), "tester", c.ID, 0, func(c *store.Connection) error { c.GrantedScopes = []string{"ok", bad}; return nil })
				return err
			}},
			{"Delete", func() error { _, err := s.Delete(ctx(t), bad, c.ID, 0, true); return err }},
			{"PutRecipe.Name", func() error {
				r := recipe("r-2", "ws", "production")
				r.Name = bad
				return s.PutRecipe(ctx(t), "tester", r)
			}},
			{"GetRecipe", func() error { _, err := s.GetRecipe(ctx(t), bad); return err }},
			{"Bind.Step", func() error {
				return s.Bind(ctx(t), "tester", store.Binding{RecipeID: "r-1", Step: bad, ConnectionID: c.ID}, allow)
			}},
			{"Unbind", func() error { return s.Unbind(ctx(t), "tester", "r-1", bad) }},
			{"Usage", func() error { _, err := s.Usage(ctx(t), bad); return err }},
			{"RecipeBindings", func() error { _, err := s.RecipeBindings(ctx(t), bad); return err }},
			{"GetWorkspace", func() error { _, err := s.GetWorkspace(ctx(t), bad); return err }},
			{"PutWorkspace", func() error { return s.PutWorkspace(ctx(t), "tester", &store.Workspace{ID: bad}) }},
			{"PutOAuthClient", func() error {
				_, err := s.PutOAuthClient(ctx(t), "tester", store.ClientKey{Connector: "zendesk", Generation: "g"}, bad)
				return err
			}},
			{"OAuthClient", func() error { _, err := s.OAuthClient(ctx(t), "zendesk", bad, true); return err }},
			{"CreateAuthState.Scopes", func() error {
				return s.CreateAuthState(ctx(t), &store.AuthState{StateHash: "h", ConnectionID: c.ID, Subject: "u", Scopes: []string{bad},
					RedirectURI: "http://127.0.0.1/cb", ExpireTime: time.Now().Add(time.Minute)})
			}},
			{"ConsumeAuthState", func() error { _, err := s.ConsumeAuthState(ctx(t), bad, time.Now()); return err }},
			{"Events.Actor", func() error { _, err := s.Events(ctx(t), store.EventQuery{Actor: bad, Limit: 5}); return err }},
			{"RecordAccess.JobID", func() error {
				return s.RecordAccess(ctx(t), "", []store.AccessEvent{access("ws", "fine"), access("ws", bad)})
			}},
			{"AccessEvents.JobID", func() error { _, err := s.AccessEvents(ctx(t), store.AccessQuery{JobID: bad, Limit: 5}); return err }},
			{"AccessEvents.RecipeID", func() error { _, err := s.AccessEvents(ctx(t), store.AccessQuery{RecipeID: bad, Limit: 5}); return err }},
		}
		for _, tc := range calls {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				if err := tc.call(); !errors.Is(err, store.ErrInvalidText) {
					t.Errorf("got %v, want ErrInvalidText", err)
				}
			})
		}
	}
	if after, err := s.LastEventSeq(ctx(t)); err != nil || after != seq {
		t.Errorf("events after the refusals: last seq %d (%v), want %d", after, err, seq)
	}
	got, err := s.Get(ctx(t), c.ID)
	if err != nil || got.Version != c.Version {
		t.Errorf("connection after the refusals: %v, %v; want version %d", got, err, c.Version)
	}
	evs, err := s.AccessEvents(ctx(t), store.AccessQuery{Limit: 10})
	if err != nil || len(evs) != 1 {
		t.Errorf("access events after the refusals: %d (%v), want 1", len(evs), err)
	}
}

// A page token carrying bad text is refused as a bad token, on every store
// alike.
func testBadTextPageTokens(t *testing.T, s store.Store) {
	mustCreate(t, s, sample("ws"))
	for name, bad := range badTexts {
		tok := store.PageToken{CreateTime: time.Now(), ID: bad}.Encode()
		if _, _, err := s.List(ctx(t), store.ListQuery{WorkspaceID: "ws", PageSize: 5, PageToken: tok}); !errors.Is(err, store.ErrInvalidPageToken) {
			t.Errorf("List with a token holding %s: %v, want ErrInvalidPageToken", name, err)
		}
	}
}

func testCrossEnvironmentBindings(t *testing.T, s store.Store) {
	prod := mustCreate(t, s, sample("ws"))
	sbx := sample("ws")
	sbx.Environment = "sandbox"
	mustCreate(t, s, sbx)
	for _, r := range []*store.Recipe{recipe("r-prod", "ws", "production"), recipe("r-other-ws", "ws2", "production")} {
		if err := s.PutRecipe(ctx(t), "tester", r); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []store.Binding{{RecipeID: "r-prod", Step: "same", ConnectionID: prod.ID},
		{RecipeID: "r-prod", Step: "cross", ConnectionID: sbx.ID}, {RecipeID: "r-other-ws", Step: "cross", ConnectionID: sbx.ID}} {
		if err := s.Bind(ctx(t), "tester", b, allow); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.CrossEnvironmentBindings(ctx(t), "ws")
	if err != nil || len(got) != 1 || got[0].RecipeID != "r-prod" || got[0].Step != "cross" {
		t.Errorf("CrossEnvironmentBindings(ws) = %+v, %v; want r-prod/cross only", got, err)
	}
	var ce *store.CrossEnvironmentError
	if err := s.PutWorkspace(ctx(t), "tester", &store.Workspace{ID: "ws"}); !errors.As(err, &ce) || len(ce.Bindings) != 1 || ce.Bindings[0].Step != "cross" {
		t.Errorf("turning cross-environment bindings off while r-prod/cross exists: %v, want CrossEnvironmentError listing it", err)
	}
	if err := s.Unbind(ctx(t), "tester", "r-prod", "cross"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutWorkspace(ctx(t), "tester", &store.Workspace{ID: "ws"}); err != nil {
		t.Errorf("turning cross-environment bindings off with none left: %v", err)
	}
}

// A bind of a sandbox connection to a production recipe racing with
// turning cross-environment bindings off: never both. Either the bind sees
// the setting off (and the rule refuses it), or the setting change sees
// the binding (and is refused).
func testCrossEnvironmentOffRacesBind(t *testing.T, s store.Store) {
	sbx := sample("ws")
	sbx.Environment = "sandbox"
	mustCreate(t, s, sbx)
	if err := s.PutRecipe(ctx(t), "tester", recipe("r-prod", "ws", "production")); err != nil {
		t.Fatal(err)
	}
	rule := errors.New("cross-environment binding not allowed")
	check := func(w *store.Workspace, r *store.Recipe, c *store.Connection, _ []store.BindingView) error {
		if r.Environment != c.Environment && !w.AllowCrossEnvironment {
			return rule
		}
		return nil
	}
	for i := range 40 {
		if err := s.PutWorkspace(ctx(t), "tester", &store.Workspace{ID: "ws", AllowCrossEnvironment: true}); err != nil {
			t.Fatal(err)
		}
		var bindErr, offErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			bindErr = s.Bind(ctx(t), "tester", store.Binding{RecipeID: "r-prod", Step: "cross", ConnectionID: sbx.ID}, check)
		})
		wg.Go(func() { offErr = s.PutWorkspace(ctx(t), "tester", &store.Workspace{ID: "ws"}) })
		wg.Wait()
		var ce *store.CrossEnvironmentError
		switch {
		case bindErr == nil && offErr == nil:
			t.Fatalf("trial %d: the bind and turning cross-environment bindings off both succeeded", i)
		case bindErr != nil && !errors.Is(bindErr, rule):
			t.Fatalf("trial %d: bind: %v", i, bindErr)
		case offErr != nil && !errors.As(offErr, &ce):
			t.Fatalf("trial %d: PutWorkspace: %v", i, offErr)
		}
		w, err := s.GetWorkspace(ctx(t), "ws")
		if err != nil {
			t.Fatal(err)
		}
		cross, err := s.CrossEnvironmentBindings(ctx(t), "ws")
		if err != nil {
			t.Fatal(err)
		}
		if !w.AllowCrossEnvironment && len(cross) > 0 {
			t.Fatalf("trial %d: cross-environment bindings are off, yet %d exist", i, len(cross))
		}
		if len(cross) > 0 {
			if err := s.Unbind(ctx(t), "tester", "r-prod", "cross"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// DueForCheck lists the active, live connections made and verified before
// the given time, never verified first.
func testDueForCheck(t *testing.T, s store.Store) {
	at := func(c *store.Connection, status string, verified time.Time) *store.Connection {
		c.Status, c.LastVerifyTime = status, verified
		return mustCreate(t, s, c)
	}
	long := time.Now().Add(-48 * time.Hour)
	never := at(sample("ws-due"), store.StatusActive, time.Time{})
	old := at(sample("ws-due"), store.StatusActive, long)
	at(sample("ws-due"), store.StatusActive, time.Now().Add(time.Hour)) // verified after the cutoff
	at(sample("ws-due"), store.StatusInvalid, time.Time{})              // a person must fix it
	gone := at(sample("ws-due"), store.StatusActive, time.Time{})
	if _, err := s.Delete(ctx(t), "test", gone.ID, 0, false); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DueForCheck(ctx(t), time.Now().Add(-time.Hour), nil, 10); err != nil || len(got) != 0 {
		t.Errorf("due an hour ago: %d, %v; want none (all were made just now)", len(got), err)
	}
	// Paged one at a time: the same two, in the same order.
	var ids []string
	var after *store.Connection
	for range 5 {
		got, err := s.DueForCheck(ctx(t), time.Now().Add(time.Minute), after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		ids, after = append(ids, got[0].ID), got[0]
	}
	if !slices.Equal(ids, []string{never.ID, old.ID}) {
		t.Errorf("due: %v, want the never-verified one, then the one verified long ago", ids)
	}
}
