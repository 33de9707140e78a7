package envflag_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/integrationhub/connections/internal/envflag"
)

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantAddr  string
		wantGrace time.Duration
		wantLevel slog.Level
		wantErr   string
	}{
		{name: "defaults", wantAddr: "127.0.0.1:1", wantGrace: time.Second, wantLevel: slog.LevelInfo},
		{name: "environment", env: map[string]string{"T_ADDR": "0.0.0.0:2", "T_GRACE": "3s", "T_LEVEL": "debug"},
			wantAddr: "0.0.0.0:2", wantGrace: 3 * time.Second, wantLevel: slog.LevelDebug},
		{name: "flag beats environment", env: map[string]string{"T_ADDR": "0.0.0.0:2"}, args: []string{"-addr=:3"},
			wantAddr: ":3", wantGrace: time.Second, wantLevel: slog.LevelInfo},
		{name: "malformed environment names the variable", env: map[string]string{"T_GRACE": "soon"}, wantErr: "T_GRACE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var addr string
			var grace time.Duration
			var level slog.Level
			fs := envflag.New("t")
			fs.String(&addr, "addr", "T_ADDR", "127.0.0.1:1", "address")
			fs.Duration(&grace, "grace", "T_GRACE", time.Second, "grace")
			fs.Level(&level, "level", "T_LEVEL", "level")
			err := fs.Parse(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse = %v, want an error naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if addr != tt.wantAddr || grace != tt.wantGrace || level != tt.wantLevel {
				t.Errorf("got %q %v %v, want %q %v %v", addr, grace, level, tt.wantAddr, tt.wantGrace, tt.wantLevel)
			}
		})
	}
}
