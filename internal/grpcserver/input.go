package grpcserver

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/integrationhub/connections/internal/validtext"
)

// RegisterService registers a service whose handlers answer a request that
// does not parse (truncated bytes, invalid UTF-8 in a string field) with
// InvalidArgument, before any interceptor runs (authentication included),
// rather than gRPC's Internal: the caller sent it, nothing failed inside.
// The generated Register functions call it when given a *Server.
//
// gRPC writes Internal to the caller as soon as a codec's Unmarshal fails,
// so the server's codec (codec below) does not fail: it notes the error
// against the message, and the handlers registered here return it.
func (s *Server) RegisterService(sd *grpc.ServiceDesc, impl any) {
	w := *sd
	w.Methods = make([]grpc.MethodDesc, len(sd.Methods))
	for i, m := range sd.Methods {
		h := m.Handler
		m.Handler = func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			return h(srv, ctx, func(v any) error { return s.codec.check(v, dec(v)) }, in)
		}
		w.Methods[i] = m
	}
	w.Streams = make([]grpc.StreamDesc, len(sd.Streams))
	for i, st := range sd.Streams {
		h := st.Handler
		st.Handler = func(srv any, ss grpc.ServerStream) error { return h(srv, malformedStream{ss, s.codec}) }
		w.Streams[i] = st
	}
	s.Server.RegisterService(&w, impl)
}

// codec is gRPC's proto codec, except that a message that does not decode
// is reset and its error kept for check instead of being returned.
type codec struct {
	encoding.CodecV2
	failed sync.Map // message pointer -> error
}

func newCodec() *codec { return &codec{CodecV2: encoding.GetCodecV2("proto")} }

func (c *codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	proto.Reset(m)
	c.failed.Store(v, err)
	return nil
}

// check returns InvalidArgument when v did not decode, else err.
func (c *codec) check(v any, err error) error {
	if bad, ok := c.failed.LoadAndDelete(v); ok {
		return status.Error(codes.InvalidArgument, "malformed request message: "+bad.(error).Error())
	}
	return err
}

type malformedStream struct {
	grpc.ServerStream
	codec *codec
}

func (s malformedStream) RecvMsg(m any) error { return s.codec.check(m, s.ServerStream.RecvMsg(m)) }

// checkText refuses a request holding a NUL byte or invalid UTF-8 in any
// string, naming the field: no store or record can keep such text alike
// (PostgreSQL refuses NUL, SQLite keeps it).
func checkText(m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	err := validtext.Message(msg)
	var te *validtext.Error
	if !errors.As(err, &te) {
		return nil
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+te.Error())
	if ds, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
		Field: te.Field, Description: validtext.Problem,
	}}}); derr == nil {
		st = ds
	}
	return st.Err()
}

func textUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := checkText(req); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func textStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, textCheckedStream{ss})
}

type textCheckedStream struct{ grpc.ServerStream }

func (s textCheckedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkText(m)
}
