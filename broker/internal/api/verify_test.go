package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

	"github.com/integrationhub/connections/broker/internal/api"
)

// A worker reporting 403 does not take a connection down on its word: the
// broker runs the connector's test request (once per minute per connection,
// however many report), and only a refusal there invalidates the connection.
func TestFailureReportVerified(t *testing.T) {
	ctx := t.Context()
	var mode atomic.Value
	mode.Store(200)
	var hits atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(mode.Load().(int))
	}))
	t.Cleanup(app.Close)
	var mu sync.Mutex
	var invalidated []connectionsv1.StatusReason
	c := newBroker(t, func(d *api.Deps) {
		d.OnInvalid = func(_, _ string, r connectionsv1.StatusReason, _ string) {
			mu.Lock()
			invalidated = append(invalidated, r)
			mu.Unlock()
		}
	})
	store := func() {
		req := put(&credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "k"}}},
			credentialv1.AuthType_AUTH_TYPE_API_KEY, app.URL)
		req.AllowedHosts, req.PrivateNetwork = []string{strings.TrimPrefix(app.URL, "http://")}, true // the app is on loopback
		req.TestRequest = &brokerv1.TestRequest{Method: "GET", Url: app.URL + "/me"}
		if _, err := c.admin.PutSecret(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	report := func() error {
		_, err := c.worker.ReportCredentialFailure(c.job(t), &brokerv1.ReportCredentialFailureRequest{ConnectionId: id, HttpStatus: 403})
		return err
	}
	store()
	for range 5 {
		err := report()
		var reason string
		for _, d := range status.Convert(err).Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok {
				reason = ei.GetReason()
			}
		}
		if status.Code(err) != codes.FailedPrecondition || reason != "CREDENTIAL_VERIFIED" {
			t.Fatalf("report while the credential works: %v (%s), want FailedPrecondition CREDENTIAL_VERIFIED", err, reason)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("5 reports ran the test request %d times, want once", hits.Load())
	}
	mu.Lock()
	if len(invalidated) != 0 {
		t.Errorf("a verified credential was invalidated: %v", invalidated)
	}
	mu.Unlock()

	// The app really refuses it now; a new secret write forgets the old
	// verdict, and the next report is confirmed by the test request.
	mode.Store(403)
	store()
	if err := report(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("report after the app refused: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(invalidated) != 1 || invalidated[0] != connectionsv1.StatusReason_STATUS_REASON_INSUFFICIENT_PERMISSIONS {
		t.Errorf("invalidated %v, want once for insufficient permissions", invalidated)
	}
}

// A connection the broker cannot check itself (no test request) turns
// invalid only once two different jobs report it: one job's reports, however
// many, are noted and change nothing.
func TestFailureReportWithoutTestRequestNeedsTwoJobs(t *testing.T) {
	var mu sync.Mutex
	var invalidated int
	c := newBroker(t, func(d *api.Deps) {
		d.OnInvalid = func(string, string, connectionsv1.StatusReason, string) {
			mu.Lock()
			invalidated++
			mu.Unlock()
		}
	})
	if _, err := c.admin.PutSecret(t.Context(), put(&credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "k"}}},
		credentialv1.AuthType_AUTH_TYPE_API_KEY, "")); err != nil {
		t.Fatal(err)
	}
	report := func(job string) (codes.Code, string) {
		_, err := c.worker.ReportCredentialFailure(c.jobNamed(t, job), &brokerv1.ReportCredentialFailureRequest{ConnectionId: id, HttpStatus: 401})
		for _, d := range status.Convert(err).Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok {
				return status.Code(err), ei.GetReason()
			}
		}
		return status.Code(err), ""
	}
	for range 3 {
		if code, reason := report("job-1"); code != codes.FailedPrecondition || reason != "FAILURE_REPORT_NOTED" {
			t.Fatalf("job-1 reporting: %v %s, want FailedPrecondition FAILURE_REPORT_NOTED", code, reason)
		}
	}
	mu.Lock()
	if invalidated != 0 {
		t.Errorf("one job's reports invalidated the connection %d times", invalidated)
	}
	mu.Unlock()
	if code, reason := report("job-2"); code != codes.FailedPrecondition || reason != "" {
		t.Fatalf("job-2 reporting: %v %s, want FailedPrecondition (the connection no longer works)", code, reason)
	}
	mu.Lock()
	defer mu.Unlock()
	if invalidated != 1 {
		t.Errorf("after a second job reported: invalidated %d times, want once", invalidated)
	}
}
