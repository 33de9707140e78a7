// Package validtext refuses text that no store or record can hold: a NUL
// byte (PostgreSQL's text type rejects it, SQLite keeps it, so the two stores
// would disagree) or invalid UTF-8. Servers check every string of every
// request with Message at the edge; stores check what they write with Value,
// so that both stores answer alike whatever reaches them.
package validtext

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Problem says what is wrong with a text; the value itself is never named
// (it may be a secret).
const Problem = "must be valid UTF-8 without NUL bytes"

// Valid reports whether s is valid UTF-8 without a NUL byte.
func Valid(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// Error names the field holding bad text.
type Error struct {
	Field string // e.g. "instance.org_id" or "events[3].job_id"
}

func (e *Error) Error() string { return e.Field + ": " + Problem }

// Message returns an *Error naming the first string field of m (nested
// messages, lists and maps included, map keys too) that is not Valid, or nil.
// Unknown fields are not looked at: nothing reads them.
func Message(m proto.Message) error {
	if m == nil {
		return nil
	}
	if f := message(m.ProtoReflect(), ""); f != "" {
		return &Error{Field: f}
	}
	return nil
}

func message(m protoreflect.Message, prefix string) (bad string) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && bad == ""; i++ {
				bad = single(fd, l.Get(i), name+"["+strconv.Itoa(i)+"]")
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if ks, ok := k.Interface().(string); ok && !Valid(ks) {
					bad = name + " (a key)"
					return false
				}
				// The key is not echoed: map values may be secret-ish.
				bad = single(fd.MapValue(), mv, name+" (a value)")
				return bad == ""
			})
		default:
			bad = single(fd, v, name)
		}
		return bad == ""
	})
	return bad
}

func single(fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !Valid(v.String()) {
			return name
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return message(v.Message(), name+".")
	}
	return ""
}

// Value returns an *Error naming the first string reachable from v (struct
// fields, pointers, slices, arrays, map keys and values) that is not Valid,
// or nil; name labels v itself.
func Value(name string, v any) error {
	if f := value(reflect.ValueOf(v), name, 0); f != "" {
		return &Error{Field: f}
	}
	return nil
}

func value(v reflect.Value, name string, depth int) string {
	if depth > 16 || !v.IsValid() {
		return ""
	}
	switch v.Kind() {
	case reflect.String:
		if !Valid(v.String()) {
			return name
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return value(v.Elem(), name, depth+1)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if !t.Field(i).IsExported() {
				continue
			}
			if f := value(v.Field(i), name+"."+t.Field(i).Name, depth+1); f != "" {
				return f
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return "" // bytes, not text
		}
		for i := range v.Len() {
			if f := value(v.Index(i), fmt.Sprintf("%s[%d]", name, i), depth+1); f != "" {
				return f
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if f := value(it.Key(), name+" (a key)", depth+1); f != "" {
				return f
			}
			if f := value(it.Value(), name+"[]", depth+1); f != "" {
				return f
			}
		}
	}
	return ""
}

// Clean returns s made Valid: invalid UTF-8 becomes U+FFFD and NUL bytes are
// dropped. For text a third party wrote (an app's status line, an identity
// it returned) that is recorded rather than refused.
func Clean(s string) string {
	if Valid(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}
