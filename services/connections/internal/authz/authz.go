// Package authz decides who may call what on the connection service. Callers
// present a bearer JWT (see internal/jwtauth); every RPC needs one privilege,
// listed in methodPrivilege, and acts only in the token's workspace.
package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/privilege"
)

// methodPrivilege is the privilege each RPC needs. An RPC missing here is
// refused to everyone (TestEveryMethodHasAPrivilege keeps it complete).
var methodPrivilege = func() map[string]string {
	svc := "/" + connectionsv1.ConnectionService_ServiceDesc.ServiceName + "/"
	return map[string]string{
		svc + "CreateConnection":            privilege.CreateConnections,
		svc + "GetConnection":               privilege.ViewConnections,
		svc + "ListConnections":             privilege.ViewConnections,
		svc + "ListConnectors":              privilege.ViewConnections,
		svc + "ListConnectionUsage":         privilege.ViewConnections,
		svc + "GetRecipe":                   privilege.ViewConnections,
		svc + "WatchConnections":            privilege.ViewConnections,
		svc + "UpdateConnection":            privilege.EditConnections,
		svc + "DeleteConnection":            privilege.DeleteConnections,
		svc + "DisconnectConnection":        privilege.EditConnections,
		svc + "PromoteConnection":           privilege.CreateConnections,
		svc + "CreateConnectSession":        privilege.ViewConnections, // and what the session may do, checked inside
		svc + "RegisterRecipe":              privilege.ManageRecipes,
		svc + "BindConnection":              privilege.ManageRecipes,
		svc + "UnbindConnection":            privilege.ManageRecipes,
		svc + "UpdateWorkspaceSettings":     privilege.ManageWorkspace,
		svc + "CreateRuntimeUserConnection": privilege.EditRuntimeUserConnections,
		svc + "DeleteRuntimeUserConnection": privilege.EditRuntimeUserConnections,
		svc + "ListRuntimeUserConnections":  privilege.ViewRuntimeUserConnections,
		svc + "ListAuditEvents":             privilege.ViewAudit,
		svc + "ListAccessEvents":            privilege.ViewAudit,
		svc + "RecordAccess":                privilege.ReportStatus,
		svc + "RecordTokenRefresh":          privilege.ReportStatus,
		svc + "RegisterOAuthClient":         privilege.ManageWorkspace,
		svc + "GetOAuthClient":              privilege.ViewConnections,
		svc + "StartAuthorization":          privilege.EditConnections,
		svc + "TestConnection":              privilege.EditConnections,
		svc + "ReportConnectionStatus":      privilege.ReportStatus,
		svc + "Reconcile":                   privilege.Reconcile,
		svc + "CreateWebhook":               privilege.ManageWorkspace,
		svc + "ListWebhooks":                privilege.ManageWorkspace,
		svc + "DeleteWebhook":               privilege.ManageWorkspace,
		svc + "ListWebhookDeliveries":       privilege.ManageWorkspace,
		svc + "RedeliverWebhook":            privilege.ManageWorkspace,
	}
}()

// PrivilegeFor returns the privilege an RPC needs ("" if none is defined).
func PrivilegeFor(fullMethod string) string { return methodPrivilege[fullMethod] }

// Principal is the authenticated caller.
type Principal struct {
	Subject    string
	Workspace  string // or jwtauth.AllWorkspaces
	Privileges []string
}

type principalKey struct{}

// FromContext returns the caller of the current RPC.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p (for tests of handlers).
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Actor names the caller in audit events.
func Actor(ctx context.Context) string {
	if p, ok := FromContext(ctx); ok {
		return p.Subject
	}
	return "system"
}

// ErrWorkspace means the caller acts in another workspace than the resource.
var ErrWorkspace = errors.New("authz: resource is outside the caller's workspace")

// CheckWorkspace allows the caller to act on a resource in workspace ws.
func CheckWorkspace(ctx context.Context, ws string) error {
	p, ok := FromContext(ctx)
	if !ok {
		return ErrWorkspace
	}
	if jwtauth.CoversWorkspace(p.Workspace, ws) {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrWorkspace, ws)
}

// ErrPrivilege means the caller lacks a privilege a part of its request
// needs beyond the RPC's own.
var ErrPrivilege = errors.New("authz: missing privilege")

// CheckPrivilege allows the caller to do what priv covers, for a request
// that does more than its RPC's own privilege allows (CreateConnection that
// also binds a recipe step).
func CheckPrivilege(ctx context.Context, priv string) error {
	if p, ok := FromContext(ctx); ok && slices.Contains(p.Privileges, priv) {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrPrivilege, priv)
}

// ErrAllWorkspaces means the call spans workspaces and needs a token for
// every workspace.
var ErrAllWorkspaces = errors.New("authz: needs a token for every workspace")

// CheckAllWorkspaces allows only a caller whose token covers every workspace.
func CheckAllWorkspaces(ctx context.Context) error {
	if p, ok := FromContext(ctx); ok && p.Workspace == jwtauth.AllWorkspaces {
		return nil
	}
	return ErrAllWorkspaces
}

// Interceptors authenticate every call except health and reflection, and
// check the RPC's privilege. Failures are final here: Unauthenticated for a
// missing or bad token, PermissionDenied for a missing privilege.
func Interceptors(v *jwtauth.Verifier) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	authFn := func(ctx context.Context) (context.Context, error) {
		method, _ := grpc.Method(ctx)
		c, err := v.Authorize(ctx, method, methodPrivilege[method])
		if err != nil {
			return nil, err
		}
		// The claims are shared by every call with this token (the
		// verifier remembers it); the principal gets its own privileges.
		return WithPrincipal(ctx, &Principal{Subject: c.Subject, Workspace: c.Workspace, Privileges: slices.Clone(c.Privileges)}), nil
	}
	guarded := selector.MatchFunc(func(_ context.Context, cm interceptors.CallMeta) bool {
		return cm.Service != healthpb.Health_ServiceDesc.ServiceName && !strings.HasPrefix(cm.Service, "grpc.reflection.")
	})
	return selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(authFn), guarded),
		selector.StreamServerInterceptor(auth.StreamServerInterceptor(authFn), guarded)
}
