// Package failpoint lets tests make a process fail at a named step of a
// write path, to show that every crash point converges. Failpoints are off
// unless the test-only environment variable INTEGRATIONHUB_FAILPOINTS is set
// when the process starts (or Enable is called in-process); production code
// pays one map lookup on an empty, never-written map.
//
// INTEGRATIONHUB_FAILPOINTS is a comma-separated list of name=action, where
// action is "error" (the step returns ErrInjected), "exit" (the process dies
// at once with status 137, as after kill -9, without running deferred code)
// or "hang" (the step blocks until its context ends).
package failpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// Env is the environment variable that arms failpoints in a process.
const Env = "INTEGRATIONHUB_FAILPOINTS"

// ErrInjected is what an "error" failpoint returns.
var ErrInjected = errors.New("failpoint: injected failure")

// Actions.
const (
	Error = "error"
	Exit  = "exit"
	Hang  = "hang"
)

var (
	mu     sync.RWMutex
	points = parse(os.Getenv(Env))
)

func parse(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if name, action, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			m[name] = action
		}
	}
	return m
}

// Enable arms a failpoint in this process (tests only); Disable disarms it.
func Enable(name, action string) {
	mu.Lock()
	points[name] = action
	mu.Unlock()
}

// Disable disarms a failpoint.
func Disable(name string) {
	mu.Lock()
	delete(points, name)
	mu.Unlock()
}

// Inject runs the failpoint called name: nil when it is not armed.
func Inject(ctx context.Context, name string) error {
	mu.RLock()
	action, ok := points[name]
	mu.RUnlock()
	if !ok {
		return nil
	}
	switch action {
	case Exit:
		fmt.Fprintf(os.Stderr, "failpoint %s: exiting\n", name)
		os.Exit(137)
	case Hang:
		<-ctx.Done()
		return fmt.Errorf("failpoint %s: %w", name, ctx.Err())
	}
	return fmt.Errorf("failpoint %s: %w", name, ErrInjected)
}
