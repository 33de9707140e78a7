package api

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// RegisterRecipe creates or replaces a recipe.
func (s *Server) RegisterRecipe(ctx context.Context, req *connectionsv1.RegisterRecipeRequest) (*connectionsv1.RegisterRecipeResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if old, err := s.store.GetRecipe(ctx, req.GetRecipeId()); err == nil && old.WorkspaceID != req.GetWorkspaceId() {
		return nil, s.toStatus(ctx, invalid("workspace_id", "the recipe is registered in another workspace; recipes do not move"))
	}
	r := &store.Recipe{
		ID:                     req.GetRecipeId(),
		WorkspaceID:            req.GetWorkspaceId(),
		Name:                   req.GetName(),
		Environment:            environments.stored(req.GetEnvironment()),
		Callable:               req.GetCallable(),
		RuntimeUserConnections: req.GetRuntimeUserConnections(),
		RuntimeUserFallback:    req.GetRuntimeUserFallback(),
	}
	if err := s.store.PutRecipe(ctx, authz.Actor(ctx), r); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("RegisterRecipe: %w", err))
	}
	return &connectionsv1.RegisterRecipeResponse{Recipe: recipeToProto(r)}, nil
}

// BindConnection binds a recipe step to a connection, enforcing the binding
// rules inside the store's transaction.
func (s *Server) BindConnection(ctx context.Context, req *connectionsv1.BindConnectionRequest) (*connectionsv1.BindConnectionResponse, error) {
	r, err := s.store.GetRecipe(ctx, req.GetRecipeId())
	if err != nil {
		return nil, s.toStatus(ctx, missing("recipe not found; register it with RegisterRecipe", err))
	}
	if err := authz.CheckWorkspace(ctx, r.WorkspaceID); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	b := store.Binding{RecipeID: req.GetRecipeId(), Step: req.GetStep(), ConnectionID: req.GetConnectionId()}
	if err := s.store.Bind(ctx, authz.Actor(ctx), b, s.bindingRules); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("BindConnection: %w", err))
	}
	bs, err := s.store.RecipeBindings(ctx, b.RecipeID)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("BindConnection: %w", err))
	}
	for _, got := range bs {
		if got.Step == b.Step {
			b = got
		}
	}
	return &connectionsv1.BindConnectionResponse{Binding: bindingToProto(b)}, nil
}

// bindingRules are the rules a binding must pass, checked in the bind's
// transaction. Each refusal names the rule, so that callers can tell the
// user what to fix.
func (s *Server) bindingRules(ws *store.Workspace, r *store.Recipe, c *store.Connection, others []store.BindingView) error {
	switch {
	case c.WorkspaceID != r.WorkspaceID:
		return rule("WORKSPACE_MISMATCH", c.ID, "the connection belongs to another workspace than the recipe")
	case c.ParentConnectionID != "":
		return rule("RUNTIME_USER_CONNECTION", c.ID, "runtime user connections are swapped in at run time and cannot be bound to recipes")
	case c.Status != store.StatusActive:
		return rule("CONNECTION_NOT_ACTIVE", c.ID, fmt.Sprintf(
			"the connection is %s; a valid connection must exist before triggers and actions are configured", c.Status))
	case c.Environment != r.Environment && !ws.AllowCrossEnvironment:
		return rule("ENVIRONMENT_MISMATCH", c.ID, fmt.Sprintf(
			"a %s recipe cannot use a %s connection unless the workspace allows cross-environment bindings", r.Environment, c.Environment))
	}
	sameApp := map[string]bool{}
	for _, o := range others {
		if o.Connection.Connector == c.Connector && o.Connection.ID != c.ID {
			sameApp[o.Connection.ID] = true
		}
	}
	allowed := 0
	if conn, ok := s.catalog.Get(c.Connector); ok && conn.AllowsSecondary {
		allowed = 1
	}
	if len(sameApp) > allowed {
		return rule("SECOND_CONNECTION_FOR_APP", c.ID, fmt.Sprintf(
			"the recipe already uses %d other %s connection(s) and %s allows %d", len(sameApp), c.Connector, c.Connector, allowed))
	}
	return nil
}

// UnbindConnection removes a binding.
func (s *Server) UnbindConnection(ctx context.Context, req *connectionsv1.UnbindConnectionRequest) (*connectionsv1.UnbindConnectionResponse, error) {
	r, err := s.store.GetRecipe(ctx, req.GetRecipeId())
	if err != nil {
		return nil, s.toStatus(ctx, missing("recipe not found; register it with RegisterRecipe", err))
	}
	if err := authz.CheckWorkspace(ctx, r.WorkspaceID); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := s.store.Unbind(ctx, authz.Actor(ctx), req.GetRecipeId(), req.GetStep()); err != nil {
		return nil, s.toStatus(ctx, missing("that recipe step has no binding", err))
	}
	return &connectionsv1.UnbindConnectionResponse{}, nil
}

// ListConnectionUsage lists the recipe steps that use a connection.
func (s *Server) ListConnectionUsage(ctx context.Context, req *connectionsv1.ListConnectionUsageRequest) (*connectionsv1.ListConnectionUsageResponse, error) {
	if _, err := s.get(ctx, req.GetConnectionId()); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListConnectionUsage: %w", err))
	}
	bs, err := s.store.Usage(ctx, req.GetConnectionId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListConnectionUsage: %w", err))
	}
	resp := &connectionsv1.ListConnectionUsageResponse{}
	for _, b := range bs {
		resp.Bindings = append(resp.Bindings, bindingToProto(b))
	}
	return resp, nil
}

// UpdateWorkspaceSettings replaces a workspace's settings.
func (s *Server) UpdateWorkspaceSettings(ctx context.Context, req *connectionsv1.UpdateWorkspaceSettingsRequest) (*connectionsv1.UpdateWorkspaceSettingsResponse, error) {
	set := req.GetSettings()
	if err := authz.CheckWorkspace(ctx, set.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if set.GetWorkspaceId() == "" {
		return nil, s.toStatus(ctx, invalid("settings.workspace_id", "required"))
	}
	// Turning cross-environment bindings off is refused while bindings
	// made when it was allowed exist: they would go on serving the other
	// environment's secrets (the store checks in the same transaction).
	origins := make([]string, 0, len(set.GetAllowedOrigins()))
	for _, o := range set.GetAllowedOrigins() {
		if o = strings.ToLower(o); !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	w := &store.Workspace{ID: set.GetWorkspaceId(), AllowCrossEnvironment: set.GetAllowCrossEnvironmentBindings(), AllowedOrigins: origins}
	if err := s.store.PutWorkspace(ctx, authz.Actor(ctx), w); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("UpdateWorkspaceSettings: %w", err))
	}
	set.AllowedOrigins = origins
	return &connectionsv1.UpdateWorkspaceSettingsResponse{Settings: set}, nil
}

func recipeToProto(r *store.Recipe) *connectionsv1.Recipe {
	return &connectionsv1.Recipe{
		Id: r.ID, WorkspaceId: r.WorkspaceID, Name: r.Name,
		Environment:            environments.of(r.Environment),
		Callable:               r.Callable,
		RuntimeUserConnections: r.RuntimeUserConnections,
		RuntimeUserFallback:    r.RuntimeUserFallback,
	}
}

func bindingToProto(b store.Binding) *connectionsv1.Binding {
	return &connectionsv1.Binding{RecipeId: b.RecipeID, Step: b.Step, ConnectionId: b.ConnectionID, CreateTime: timestamppb.New(b.CreateTime)}
}

// GetRecipe returns a recipe and its bindings.
func (s *Server) GetRecipe(ctx context.Context, req *connectionsv1.GetRecipeRequest) (*connectionsv1.GetRecipeResponse, error) {
	r, err := s.store.GetRecipe(ctx, req.GetRecipeId())
	if err != nil {
		return nil, s.toStatus(ctx, missing("recipe not found; register it with RegisterRecipe", err))
	}
	if err := authz.CheckWorkspace(ctx, r.WorkspaceID); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	bs, err := s.store.RecipeBindings(ctx, r.ID)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("GetRecipe: %w", err))
	}
	resp := &connectionsv1.GetRecipeResponse{Recipe: recipeToProto(r)}
	for _, b := range bs {
		resp.Bindings = append(resp.Bindings, bindingToProto(b))
	}
	return resp, nil
}
