package e2e

import (
	"net"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// adminTokenProxy forwards unary calls to the broker admin API at target,
// presenting the stack's admin token (messages pass as bytes: fuzz_test.go's rawCodec), for connection services built before
// the admin API authenticated its callers (the write benchmark's "before").
// Both variants of a benchmark go through it, so that neither pays for it
// alone. It returns the proxy's address.
func adminTokenProxy(t *testing.T, target string) string {
	t.Helper()
	tok, err := os.ReadFile(stack.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	forward := func(_ any, ss grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(ss)
		in, _ := metadata.FromIncomingContext(ss.Context())
		out := metadata.MD{}
		for k, v := range in {
			if !strings.HasPrefix(k, ":") && !strings.HasPrefix(k, "grpc-") && k != "content-type" && k != "user-agent" && k != "authorization" {
				out[k] = v
			}
		}
		out.Set("authorization", "Bearer "+strings.TrimSpace(string(tok)))
		cs, err := cc.NewStream(metadata.NewOutgoingContext(ss.Context(), out), &grpc.StreamDesc{ClientStreams: true, ServerStreams: true},
			method, grpc.ForceCodec(rawCodec{}))
		if err != nil {
			return err
		}
		var req, resp []byte
		if err := ss.RecvMsg(&req); err != nil {
			return err
		}
		if err := cs.SendMsg(&req); err != nil {
			return err
		}
		if err := cs.CloseSend(); err != nil {
			return err
		}
		if err := cs.RecvMsg(&resp); err != nil {
			return err
		}
		return ss.SendMsg(&resp)
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(forward))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}
