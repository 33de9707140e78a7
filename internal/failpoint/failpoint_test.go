package failpoint

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestInject(t *testing.T) {
	if err := Inject(t.Context(), "off"); err != nil {
		t.Fatalf("unarmed failpoint: %v", err)
	}
	Enable("p", Error)
	defer Disable("p")
	if err := Inject(t.Context(), "p"); !errors.Is(err, ErrInjected) {
		t.Fatalf("armed failpoint: %v, want ErrInjected", err)
	}
	Enable("h", Hang)
	defer Disable("h")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := Inject(ctx, "h"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang: %v", err)
	}
}

func TestParse(t *testing.T) {
	m := parse("a=error, b=exit,junk")
	if m["a"] != Error || m["b"] != Exit || len(m) != 2 {
		t.Fatalf("parse = %v", m)
	}
}
