package api_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/privilege"

	"github.com/integrationhub/connections/services/connections/internal/authz"
)

func methods() protoreflect.MethodDescriptors {
	return connectionsv1.File_integrationhub_connections_v1_connection_service_proto.Services().ByName("ConnectionService").Methods()
}

func fullName(m protoreflect.MethodDescriptor) string {
	return "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
}

// invoke calls any RPC of the service with an empty request and returns the
// status code of the first answer.
func invoke(ctx context.Context, cc *grpc.ClientConn, m protoreflect.MethodDescriptor) codes.Code {
	req, resp := dynamicpb.NewMessage(m.Input()), dynamicpb.NewMessage(m.Output())
	if !m.IsStreamingServer() {
		return status.Code(cc.Invoke(ctx, fullName(m), req, resp))
	}
	// A stream that got past authorization stays open: give it a moment.
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, fullName(m))
	if err == nil {
		err = st.SendMsg(req)
	}
	if err == nil {
		err = st.CloseSend()
	}
	if err == nil {
		err = st.RecvMsg(resp)
	}
	if errors.Is(err, io.EOF) {
		return codes.OK
	}
	return status.Code(err)
}

// Every RPC names the privilege it needs; none is left open by omission.
func TestEveryMethodHasAPrivilege(t *testing.T) {
	for i := range methods().Len() {
		m := methods().Get(i)
		if p := authz.PrivilegeFor(fullName(m)); p == "" || !slices.Contains(privilege.All, p) {
			t.Errorf("%s has no known privilege (%q)", fullName(m), p)
		}
	}
}

// The privilege matrix: every RPC, without a token, with every privilege but
// its own, and with only its own. Without its privilege nothing succeeds;
// with it, the call gets past authorization (to validation of the empty
// request, or further).
func TestPrivilegeMatrix(t *testing.T) {
	ts := newService(t)
	for i := range methods().Len() {
		m := methods().Get(i)
		need := authz.PrivilegeFor(fullName(m))
		allBut := slices.DeleteFunc(slices.Clone(privilege.All), func(p string) bool { return p == need })
		t.Run(string(m.Name()), func(t *testing.T) {
			tests := []struct {
				name string
				ctx  context.Context
				want func(codes.Code) bool
			}{
				{"no token", ctxT(t), is(codes.Unauthenticated)},
				{"malformed token", metadata.AppendToOutgoingContext(ctxT(t), "authorization", "Bearer x.y.z"), is(codes.Unauthenticated)},
				{"every other privilege", ts.as(ctxT(t), t, jwtauth.AllWorkspaces, allBut...), is(codes.PermissionDenied)},
				{"no privileges", ts.as(ctxT(t), t, jwtauth.AllWorkspaces), is(codes.PermissionDenied)},
				{"its privilege", ts.as(ctxT(t), t, jwtauth.AllWorkspaces, need), func(c codes.Code) bool {
					return c != codes.Unauthenticated && c != codes.PermissionDenied
				}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if got := invoke(tt.ctx, ts.cc, m); !tt.want(got) {
						t.Errorf("%s: %s", fullName(m), got)
					}
				})
			}
		})
	}
}

func is(want codes.Code) func(codes.Code) bool { return func(c codes.Code) bool { return c == want } }

// A token for one workspace cannot see or change another's connections.
func TestWorkspaceIsolation(t *testing.T) {
	ts := newService(t)
	created, err := ts.CreateConnection(ts.as(ctxT(t), t, "ws-a", privilege.All...), oauthReq("ws-a", "a"))
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetConnection().GetId()
	other := ts.as(ctxT(t), t, "ws-b", privilege.All...)
	calls := map[string]func() error{
		"get": func() error {
			_, err := ts.GetConnection(other, &connectionsv1.GetConnectionRequest{Id: id})
			return err
		},
		"list": func() error {
			_, err := ts.ListConnections(other, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws-a"})
			return err
		},
		"create": func() error {
			_, err := ts.CreateConnection(other, oauthReq("ws-a", "x"))
			return err
		},
		"delete": func() error {
			_, err := ts.DeleteConnection(other, &connectionsv1.DeleteConnectionRequest{Id: id})
			return err
		},
		"audit": func() error {
			_, err := ts.ListAuditEvents(other, &connectionsv1.ListAuditEventsRequest{WorkspaceId: "ws-a"})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s from another workspace: %v, want PermissionDenied", name, err)
		}
	}
}
