package ctxsleep_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/integrationhub/connections/internal/ctxsleep"
)

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !ctxsleep.Sleep(t.Context(), time.Minute) || time.Since(start) != time.Minute {
			t.Errorf("a full sleep: %v", time.Since(start))
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start = time.Now()
		if ctxsleep.Sleep(ctx, time.Hour) || time.Since(start) != time.Second {
			t.Errorf("a sleep cut short by its context: %v", time.Since(start))
		}
	})
}
