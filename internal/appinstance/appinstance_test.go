package appinstance

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"

	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

// Every field survives the API and the stored JSON, whose names are fixed:
// Vault and both metadata stores hold records written with them.
func TestRoundTrips(t *testing.T) {
	in := &credentialv1.AppInstance{BaseUrl: "https://acme.example", Subdomain: "acme", OrgId: "00D1", Sandbox: true}
	got := FromProto(in)
	if out := got.Proto(); !proto.Equal(in, out) {
		t.Fatalf("Proto(FromProto(x)) = %v, want %v", out, in)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"base_url":"https://acme.example","subdomain":"acme","org_id":"00D1","sandbox":true}`; string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	if (FromProto(nil) != Instance{}) {
		t.Fatal("FromProto(nil) is not the zero instance")
	}
}
