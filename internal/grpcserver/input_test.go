package grpcserver_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
)

// rawCodec sends the bytes it is given as the request, whatever they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal([]byte, any) error   { return nil }
func (rawCodec) Name() string                  { return "proto" }

// A request whose bytes do not parse is the caller's fault: InvalidArgument,
// and the handler never runs.
func TestMalformedRequestIsInvalidArgument(t *testing.T) {
	called := false
	cc, _, _ := serve(t, func(context.Context) error { called = true; return nil }, &syncBuffer{})
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"truncated", []byte{0x0a, 0x10, 'a', 'b'}},
		{"invalid UTF-8 in a string field", []byte{0x0a, 0x02, 0xff, 0xfe}},
		{"bad wire type", []byte{0x0f}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out []byte
			err := cc.Invoke(t.Context(), "/integrationhub.broker.v1.CredentialBroker/GetCredential", &tc.raw, &out, grpc.ForceCodec(rawCodec{}))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if !strings.Contains(err.Error(), "malformed request") {
				t.Errorf("error %q does not say the request was malformed", err)
			}
		})
	}
	if called {
		t.Error("the handler ran on a malformed request")
	}
}

// A NUL byte anywhere in a request's text is refused before the handler,
// naming the field (nested messages and maps included); the value is not
// echoed.
func TestNULRefusedNamingTheField(t *testing.T) {
	cc, _, _ := serve(t, func(context.Context) error { return nil }, &syncBuffer{})
	c := brokerv1.NewCredentialBrokerClient(cc)
	for _, tc := range []struct {
		name, field string
		call        func() error
	}{
		{"job id", "job_id", func() error {
			_, err := c.MintJobToken(t.Context(), &brokerv1.MintJobTokenRequest{WorkspaceId: "ws", RecipeId: "r", JobId: "job\x00canary-nul"})
			return err
		}},
		{"map value", "form (a value)", func() error {
			_, err := c.SignRequest(t.Context(), &brokerv1.SignRequestRequest{ConnectionId: validID, Method: "GET",
				Url: "https://api.example.com/", Form: map[string]string{"a": "x\x00canary-nul"}})
			return err
		}},
		{"map key", "form (a key)", func() error {
			_, err := c.SignRequest(t.Context(), &brokerv1.SignRequestRequest{ConnectionId: validID, Method: "GET",
				Url: "https://api.example.com/", Form: map[string]string{"a\x00canary-nul": "x"}})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tc.field) || strings.Contains(err.Error(), "canary-nul") {
				t.Errorf("error %q should name %q and not echo the value", err, tc.field)
			}
			var br *errdetails.BadRequest
			for _, d := range status.Convert(err).Details() {
				if b, ok := d.(*errdetails.BadRequest); ok {
					br = b
				}
			}
			if br == nil || br.GetFieldViolations()[0].GetField() != tc.field {
				t.Errorf("BadRequest detail = %v, want field %q", br, tc.field)
			}
		})
	}
}
