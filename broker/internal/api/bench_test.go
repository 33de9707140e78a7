package api_test

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

// BenchmarkGetCredential compares, in one run on one machine:
//   - empty: a health check through the same gRPC server and interceptors
//     (logging, validation, recovery) over bufconn, the floor for any call;
//   - cached: GetCredential served from the broker's memory, with the job
//     token checked on every call (after its first verification the
//     broker remembers it: an expiry and key-version check per call);
//   - vault: the direct Vault KV v2 read the cache saves.
//
// Each reports requests per second and p50/p99 latency across parallel callers.
//
//	go test -run '^$' -bench GetCredential -benchtime 3s ./internal/api/
//
// The first verification of each token (an Ed25519 signature check and
// JSON parsing) is measured by jobtoken's BenchmarkVerify.
//
// The connection metadata comes from the broker's in-memory copy (conninfo),
// as in production once a connection was first used.
func BenchmarkGetCredential(b *testing.B) {
	c := newBroker(b)
	ctx := context.Background()
	if _, err := c.admin.PutSecret(ctx, put(&credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{
		ApiKey: &credentialv1.ApiKey{Key: "bench-key"}}}, credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://a.test")); err != nil {
		b.Fatal(err)
	}
	health := healthpb.NewHealthClient(c.cc)
	job := c.job(b)

	cases := []struct {
		name string
		call func() error
	}{
		{"empty", func() error { _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); return err }},
		{"cached", func() error {
			_, err := c.worker.GetCredential(job, &brokerv1.GetCredentialRequest{ConnectionId: id})
			return err
		}},

		{"vault", func() error { _, _, err := c.vc.Get(ctx, id); return err }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) { measure(b, tc.call) })
	}
}

// measure runs call from parallel goroutines and reports throughput,
// latency percentiles and the test process's CPU time per call (all its
// threads: for an in-process benchmark, what one call costs the machine,
// which varies far less from run to run than the rate).
func measure(b *testing.B, call func() error) {
	var mu sync.Mutex
	var all []time.Duration
	cpu0 := processCPU(b)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := call(); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		all = append(all, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(len(all)), "cpu-µs/req")
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}

// processCPU is the CPU time (user and system) the test process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
