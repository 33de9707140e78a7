package e2e

import (
	"slices"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// Each listener answers health checks and lists its services by reflection,
// as `grpcurl -plaintext ADDR list` would.
func TestHealthAndReflection(t *testing.T) {
	tests := []struct {
		name, addr string
		want       string
	}{
		{"connection service", stack.ConnectionsAddr, "integrationhub.connections.v1.ConnectionService"},
		{"broker", stack.BrokerAddr, "integrationhub.broker.v1.CredentialBroker"},
		{"broker admin", stack.BrokerAdminAddr, "integrationhub.broker.v1.BrokerAdmin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := dial(t, tt.addr)
			ctx := ctxT(t)
			for _, svc := range []string{"", tt.want} {
				resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
				if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("health of %q = %v, %v; want SERVING", svc, resp, err)
				}
			}
			stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
			}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range resp.GetListServicesResponse().GetService() {
				names = append(names, s.GetName())
			}
			for _, want := range []string{tt.want, "grpc.health.v1.Health"} {
				if !slices.Contains(names, want) {
					t.Errorf("reflection lists %v; missing %s", names, want)
				}
			}
		})
	}
}
