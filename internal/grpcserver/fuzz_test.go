package grpcserver_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Whatever bytes arrive as a request, the server answers with a status the
// caller can act on: the handler's own (here OK), or InvalidArgument for a
// request that does not decode or fails validation (a NUL byte, invalid
// UTF-8, a bad field). Never Internal or Unknown, never a panic. The seed
// corpus (f.Add and testdata/fuzz) runs with every go test.
func FuzzRequestBytes(f *testing.F) {
	for _, seed := range [][]byte{
		nil,
		[]byte("\x0a\x241e2d3c4b-5555-4000-8000-000000000001"), // a valid GetCredentialRequest
		{0x0a, 0x10, 'a', 'b'},                                 // truncated
		{0x0a, 0x02, 0xff, 0xfe},                               // invalid UTF-8
		{0x0a, 0x03, 'a', 0x00, 'b'},                           // NUL
		{0x0f},                                                 // bad wire type
		{0x12, 0x00},                                           // unknown field 2
		{0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, // overlong varint
	} {
		f.Add(seed)
	}
	cc, _, _ := serve(f, func(context.Context) error { return nil }, &syncBuffer{})
	methods := []string{
		"/integrationhub.broker.v1.CredentialBroker/GetCredential",
		"/integrationhub.broker.v1.CredentialBroker/MintJobToken",
		"/integrationhub.broker.v1.CredentialBroker/SignRequest",
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, m := range methods {
			var out []byte
			err := cc.Invoke(context.Background(), m, &raw, &out, grpc.ForceCodec(rawCodec{}))
			switch status.Code(err) {
			case codes.OK, codes.InvalidArgument, codes.Unimplemented:
			default:
				t.Fatalf("%s with % x: %v", m, raw, err)
			}
		}
	})
}
