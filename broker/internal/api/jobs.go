package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/privilege"

	"github.com/integrationhub/connections/broker/internal/access"
	"github.com/integrationhub/connections/broker/internal/jobtoken"
)

// DefaultJobTokenTTL applies when MintJobToken names no lifetime.
const DefaultJobTokenTTL = 10 * time.Minute

// Jobs is what MintJobToken needs.
type Jobs struct {
	Authority *jobtoken.Authority
	Scheduler *jwtauth.Verifier // checks the caller's bearer token
	Recipes   func(ctx context.Context, recipeID string) (*connectionsv1.GetRecipeResponse, error)
	MaxTTL    time.Duration
	// off, when set, is why this broker refuses MintJobToken.
	off error
}

var errJobsOff = errors.New("MintJobToken is not configured on this broker (-jwks, -connections-addr)")

// jobsOff is MintJobToken on a broker that has no scheduler to trust.
var jobsOff = &Jobs{off: refuse(codes.FailedPrecondition, "%s", errJobsOff.Error())}

// MintJobToken issues a job token for a recipe job.
func (s *WorkerServer) MintJobToken(ctx context.Context, req *brokerv1.MintJobTokenRequest) (_ *brokerv1.MintJobTokenResponse, err error) {
	reached(ctx)
	// Only a verified scheduler's requests are recorded with what they ask
	// for; other refusals are counted by reason alone (see record).
	scheduler := false
	defer func() {
		e := access.Event{Operation: "MintJobToken", Allowed: err == nil}
		if scheduler {
			e.Workspace, e.Recipe, e.Job, e.RuntimeUser = req.GetWorkspaceId(), req.GetRecipeId(), req.GetJobId(), req.GetRuntimeUser()
		}
		s.note(e, err)
	}()
	if s.jobs.off != nil {
		return nil, s.toStatus(ctx, s.jobs.off)
	}
	// Only the job scheduler mints: its token comes from the platform's
	// issuer, checked by the same rule as the connection service's callers.
	caller, err := s.jobs.Scheduler.Authorize(ctx, "MintJobToken", privilege.MintJobTokens)
	if err != nil {
		return nil, err
	}
	if !caller.Covers(req.GetWorkspaceId()) {
		return nil, s.toStatus(ctx, refuse(codes.PermissionDenied, "not permitted in this workspace"))
	}
	scheduler = true
	got, err := s.jobs.Recipes(ctx, req.GetRecipeId())
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, s.toStatus(ctx, refuse(codes.NotFound, "recipe %s not found; the platform registers recipes with RegisterRecipe", req.GetRecipeId()))
		}
		return nil, s.toStatus(ctx, fmt.Errorf("MintJobToken: recipe: %w", err))
	}
	r := got.GetRecipe()
	if r.GetWorkspaceId() != req.GetWorkspaceId() {
		return nil, s.toStatus(ctx, refuse(codes.InvalidArgument, "recipe_id: the recipe belongs to another workspace"))
	}
	if req.GetRuntimeUser() != "" && !(r.GetCallable() && r.GetRuntimeUserConnections()) {
		return nil, s.toStatus(ctx, refuse(codes.FailedPrecondition,
			"runtime_user: only a callable recipe with runtime user connections on runs for a runtime user"))
	}
	var conns []string
	for _, b := range got.GetBindings() {
		if !slices.Contains(conns, b.GetConnectionId()) {
			conns = append(conns, b.GetConnectionId())
		}
	}
	slices.Sort(conns)
	ttl := DefaultJobTokenTTL
	if req.GetTtl() != nil {
		ttl = req.GetTtl().AsDuration()
	}
	ttl = min(ttl, s.jobs.MaxTTL)
	tok, exp, err := s.jobs.Authority.Mint(ctx, jobtoken.Claims{
		Workspace: r.GetWorkspaceId(), Recipe: r.GetId(), Job: req.GetJobId(), RuntimeUser: req.GetRuntimeUser(), Connections: conns,
		RuntimeUserFallback: req.GetRuntimeUser() != "" && r.GetRuntimeUserFallback(),
	}, ttl)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("MintJobToken: %w", err))
	}
	return &brokerv1.MintJobTokenResponse{Token: tok, ExpireTime: timestamppb.New(exp), ConnectionIds: conns}, nil
}
