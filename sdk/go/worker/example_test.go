package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/integrationhub/connections/sdk/go/worker"
)

// A recipe worker calls an app with a connection's credential. The broker's
// address and the job token come from the pod's environment
// (INTEGRATIONHUB_BROKER_ADDR, INTEGRATIONHUB_JOB_TOKEN).
func Example() {
	c, err := worker.New(context.Background(), worker.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	const connectionID = "7d6c5b4a-3333-4000-8000-000000000001"
	resp, err := c.HTTPClient(connectionID).Get("https://api.example.com/v1/me")
	var notActive *worker.ConnectionNotActiveError
	switch {
	case errors.As(err, &notActive):
		fmt.Println("ask the connection's owner to fix it:", notActive.Detail)
		return
	case err != nil:
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
}

// A worker that builds its own requests puts the credential on them itself.
func ExampleCredential_Apply() {
	c, err := worker.New(context.Background(), worker.Options{Address: "unix:/var/run/integrationhub/broker.sock", TokenFile: "/var/run/job/token"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	cr, err := c.Credential(context.Background(), "7d6c5b4a-3333-4000-8000-000000000001")
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, cr.BaseURL+"/api/v2/tickets.json", nil)
	if err := cr.Apply(req); err != nil {
		log.Fatal(err) // worker.ErrSigned: an OAuth 1.0a connection; use HTTPClient
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
}
