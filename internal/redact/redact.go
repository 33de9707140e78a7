// Package redact prints protobuf messages with their secret fields hidden.
//
// Fields holding secrets are marked `debug_redact = true` in the .proto files,
// but Go's protobuf runtime ignores that option: String(), %v and prototext
// print every field. Anything in this project that prints a message (a debug
// log of a request, a test failure) goes through Format instead.
package redact

import (
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Placeholder replaces a redacted string field's value.
const Placeholder = "[REDACTED]"

// Format returns m in text form with every debug_redact field, at any depth,
// replaced by Placeholder (strings) or cleared (other kinds).
func Format(m proto.Message) string {
	if m == nil {
		return "<nil>"
	}
	c := proto.Clone(m)
	Clear(c.ProtoReflect())
	return prototext.MarshalOptions{}.Format(c)
}

// Clear redacts m in place.
func Clear(m protoreflect.Message) {
	var secret []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if isRedacted(fd) {
			secret = append(secret, fd)
			return true
		}
		switch {
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				Clear(mv.Message())
				return true
			})
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				Clear(v.List().Get(i).Message())
			}
		case !fd.IsMap() && !fd.IsList() && fd.Message() != nil:
			Clear(v.Message())
		}
		return true
	})
	// Changing a message while ranging over it is undefined; change it after.
	for _, fd := range secret {
		if fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap() {
			m.Set(fd, protoreflect.ValueOfString(Placeholder))
		} else {
			m.Clear(fd)
		}
	}
}

func isRedacted(fd protoreflect.FieldDescriptor) bool {
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	return ok && opts.GetDebugRedact()
}
