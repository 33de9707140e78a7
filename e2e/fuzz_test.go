package e2e

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/pgtest"
)

// rawCodec sends the bytes it is given as the request and keeps the reply's.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// fuzzRequests are valid requests of the connection service; the run
// mutates their bytes and their text.
func fuzzRequests(ws, id string) map[string]proto.Message {
	svc := "/integrationhub.connections.v1.ConnectionService/"
	return map[string]proto.Message{
		svc + "CreateConnection": &connectionsv1.CreateConnectionRequest{WorkspaceId: ws, Name: "fuzz", Connector: "http",
			Environment: prod, AuthType: key, Instance: &credentialv1.AppInstance{BaseUrl: "https://api.example.com", OrgId: "org"},
			Secret: apiKey("fuzz-key")},
		svc + "UpdateConnection": &connectionsv1.UpdateConnectionRequest{Id: id, Name: proto.String("renamed"), Secret: apiKey("k2")},
		svc + "ListConnections":  &connectionsv1.ListConnectionsRequest{WorkspaceId: ws, PageSize: 2, PageToken: "MTcwMDAwMDAwMDAwMDAwMDAwMC9h"},
		svc + "RegisterRecipe":   &connectionsv1.RegisterRecipeRequest{RecipeId: "r-fuzz", WorkspaceId: ws, Name: "fuzz", Environment: prod},
		svc + "ListAuditEvents":  &connectionsv1.ListAuditEventsRequest{WorkspaceId: ws, Actor: "someone", PageToken: "12"},
		svc + "ListAccessEvents": &connectionsv1.ListAccessEventsRequest{WorkspaceId: ws, JobId: "job", RecipeId: "r", PageToken: "3"},
		svc + "RecordAccess":     &connectionsv1.RecordAccessRequest{Events: []*connectionsv1.AccessEvent{accessEvent(ws)}},
		svc + "ReportConnectionStatus": &connectionsv1.ReportConnectionStatusRequest{ConnectionId: id,
			Status: connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE, LastError: "ok"},
		svc + "UpdateWorkspaceSettings": &connectionsv1.UpdateWorkspaceSettingsRequest{Settings: &connectionsv1.WorkspaceSettings{WorkspaceId: ws}},
		svc + "CreateRuntimeUserConnection": &connectionsv1.CreateRuntimeUserConnectionRequest{ParentConnectionId: id,
			RuntimeUser: "alice", Secret: apiKey("alice-key")},
		svc + "StartAuthorization": &connectionsv1.StartAuthorizationRequest{ConnectionId: id, Scopes: []string{"read"}},
		svc + "RegisterOAuthClient": &connectionsv1.RegisterOAuthClientRequest{Connector: "github", WorkspaceId: ws,
			ClientId: "fuzz-client", ClientSecret: "fuzz-client-secret"},
		svc + "GetOAuthClient": &connectionsv1.GetOAuthClientRequest{Connector: "github", WorkspaceId: ws},
	}
}

// mutate changes a request: a few random byte edits, a NUL byte or invalid
// UTF-8 in its text, a truncation, inserted bytes, or other letters.
func mutate(r *rand.Rand, b []byte) []byte {
	b = append([]byte(nil), b...)
	switch r.IntN(8) {
	case 5, 6, 7: // change letters: most such requests stay valid and reach the stores
		for range 1 + r.IntN(3) {
			if len(b) > 0 {
				if i := r.IntN(len(b)); b[i] >= 'a' && b[i] <= 'z' {
					b[i] = byte('a' + r.IntN(26))
				}
			}
		}
	case 0: // flip bytes
		for range 1 + r.IntN(3) {
			if len(b) > 0 {
				b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
			}
		}
	case 1: // a NUL byte inside some text
		if i := strings.IndexAny(string(b), "fuzkrenamedaliceokjobsomeone"); i >= 0 {
			b[i] = 0
		}
	case 2: // invalid UTF-8 inside some text
		if i := strings.IndexAny(string(b), "fuzkrenamedaliceokjobsomeone"); i >= 0 {
			b[i] = 0xff
		}
	case 3: // truncate
		if len(b) > 0 {
			b = b[:r.IntN(len(b))]
		}
	default: // insert random bytes
		i := r.IntN(len(b) + 1)
		ins := make([]byte, 1+r.IntN(4))
		for j := range ins {
			ins[j] = byte(r.IntN(256))
		}
		b = append(b[:i], append(ins, b[i:]...)...)
	}
	return b
}

// Thousands of mutated requests to running connection services, one on
// SQLite and one on PostgreSQL: no Internal or Unknown answer, no panic,
// and nothing half-written (every connection stored is one the service
// reported created, and none is left pending with its secret missing).
func TestFuzzRunningServers(t *testing.T) {
	const perStore = 1500
	targets := map[string]string{
		"sqlite":   "sqlite:" + sqlitePath(t),
		"postgres": pgtest.NewDatabase(t),
	}
	for name, db := range targets {
		t.Run(name, func(t *testing.T) {
			logName := "fuzz-" + name + ".log"
			svc, err := stack.StartConnectionService(t.Context(), db, devstack.Extra{LogName: logName})
			if err != nil {
				t.Fatal(err)
			}
			cc := dial(t, svc.Addr)
			cs := connectionsv1.NewConnectionServiceClient(cc)
			ctx := ctxT(t)
			ws := "ws-fuzz-" + name
			seedConn := mustCreate(t, cs, ws, "http", prod, key)
			created := 1
			reqs := fuzzRequests(ws, seedConn.GetId())
			methods := make([]string, 0, len(reqs))
			for m := range reqs {
				methods = append(methods, m)
			}
			r := rand.New(rand.NewPCG(1, uint64(len(name))))
			codesSeen := map[codes.Code]int{}
			for i := range perStore {
				m := methods[i%len(methods)]
				valid, err := proto.Marshal(reqs[m])
				if err != nil {
					t.Fatal(err)
				}
				raw := mutate(r, valid)
				var out []byte
				err = cc.Invoke(ctx, m, &raw, &out, grpc.ForceCodec(rawCodec{}))
				c := status.Code(err)
				codesSeen[c]++
				if c == codes.Internal || c == codes.Unknown {
					t.Errorf("%s with % x: %v", m, raw, err)
				}
				if c == codes.OK && strings.HasSuffix(m, "/CreateConnection") {
					var resp connectionsv1.CreateConnectionResponse
					if proto.Unmarshal(out, &resp) == nil && resp.GetConnection().GetWorkspaceId() == ws {
						created++
					}
				}
			}
			t.Logf("%s: %d mutated requests, codes %v", name, perStore, codesSeen)

			// Nothing half-written: the workspace holds exactly the
			// connections reported created, none of them pending.
			stored, pending := 0, 0
			req := &connectionsv1.ListConnectionsRequest{WorkspaceId: ws, PageSize: 1000}
			for {
				resp, err := cs.ListConnections(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range resp.GetConnections() {
					stored++
					if c.GetStatus() == connectionsv1.ConnectionStatus_CONNECTION_STATUS_PENDING {
						pending++
					}
				}
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
			if stored != created || pending != 0 {
				t.Errorf("%s: %d connections stored (%d pending), %d reported created", name, stored, pending, created)
			}
			b, err := os.ReadFile(filepath.Join(stack.Dir, logName))
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), "panic"); n != 0 {
				t.Errorf("%s: %d panics in the log", name, n)
			}
			if n := strings.Count(string(b), `"internal error"`); n != 0 {
				t.Errorf("%s: %d internal errors in the log", name, n)
			}
		})
	}
}

func accessEvent(ws string) *connectionsv1.AccessEvent {
	e := &connectionsv1.AccessEvent{WorkspaceId: ws, Operation: "GetCredential", JobId: "job", RecipeId: "r",
		Decision: connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED, Code: "OK", Count: 1, Broker: "fuzz"}
	e.FirstTime, e.LastTime = nowPB(), nowPB()
	return e
}

func nowPB() *timestamppb.Timestamp { return timestamppb.Now() }
