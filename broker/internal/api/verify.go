package api

import (
	"context"
	"errors"
	"sync"
	"time"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/appanswer"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// verifyEvery is how often, at most, worker reports make the broker run a
// connection's test request; reports in between get the last verdict.
const verifyEvery = time.Minute

// verdict is the outcome of checking a reported credential.
type verdict struct {
	at     time.Time
	reason connectionsv1.StatusReason
	detail string
	err    error // non-nil: the connection stays (verified, or the app is down)
}

// reportQuorum is how many different jobs must report a connection that
// the broker cannot check itself (no test request) within reportWindow
// before it turns invalid: one buggy or hostile worker alone cannot take a
// shared connection down, while a credential the app really refuses fails,
// and is reported, in every job that uses it.
const (
	reportQuorum = 2
	reportWindow = 10 * time.Minute
)

// verifications remembers the last verdict per connection, and for
// connections without a test request, which jobs reported them when.
type verifications struct {
	mu      sync.Mutex
	m       map[string]verdict
	reports map[string]map[string]time.Time // connection -> job -> last report
}

// errCredentialWorks answers a report whose credential the app still takes:
// the refused request needs something the connection lacks, and the
// connection stays valid for everyone else.
var errCredentialWorks = errors.New("the app refused the request, but the connection's test request succeeds with the same credential: the connection stays valid; the request needs a permission or scope it lacks")

// errReportNoted answers the first report of a connection the broker
// cannot check itself: it stays valid until another job reports it too.
var errReportNoted = errors.New("the report is noted; the broker cannot check this connection itself, so it stays valid until another job reports the same failure")

// errCannotVerify answers a report while the app cannot be reached to check
// it: the connection stays valid.
var errCannotVerify = errors.New("the app cannot be reached to verify the report; the connection stays valid, retry later")

// verifyReport checks a worker's report (from job) that the app refused
// rec's credential by sending the connector's test request (at most once
// per verifyEvery per connection). It returns the reason to invalidate with,
// or an error when the connection must stay. Without a test request to
// verify with, the report is taken as it is once reportQuorum jobs have
// made it (nil and nil).
func (s *core) verifyReport(ctx context.Context, id, job string, rec vault.Record) (*verdict, error) {
	if rec.Test == nil || rec.OAuth1 != nil || checkHost(rec, rec.Test.URL, "test request") != nil {
		if !s.verified.quorum(id, job, time.Now()) {
			return nil, errReportNoted
		}
		return nil, nil
	}
	s.verified.mu.Lock()
	v, ok := s.verified.m[id]
	s.verified.mu.Unlock()
	if !ok || time.Since(v.at) >= verifyEvery {
		v = s.runVerification(ctx, rec)
		s.verified.mu.Lock()
		if s.verified.m == nil || len(s.verified.m) > 100_000 {
			s.verified.m = map[string]verdict{}
		}
		s.verified.m[id] = v
		s.verified.mu.Unlock()
	}
	if v.err != nil {
		return nil, v.err
	}
	return &v, nil
}

// quorum records job's report of connection id and reports whether
// reportQuorum different jobs have reported it within reportWindow.
func (v *verifications) quorum(id, job string, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.reports == nil || len(v.reports) > 100_000 {
		v.reports = map[string]map[string]time.Time{}
	}
	jobs := v.reports[id]
	if jobs == nil {
		jobs = map[string]time.Time{}
		v.reports[id] = jobs
	}
	for j, at := range jobs {
		if now.Sub(at) >= reportWindow {
			delete(jobs, j)
		}
	}
	if len(jobs) < reportQuorum { // one job's repeated reports count once
		jobs[job] = now
	}
	return len(jobs) >= reportQuorum
}

// forgetVerification drops the last verdict and the reports on id: its
// secret changed.
func (s *core) forgetVerification(id string) {
	s.verified.mu.Lock()
	delete(s.verified.m, id)
	delete(s.verified.reports, id)
	s.verified.mu.Unlock()
}

func (s *core) runVerification(ctx context.Context, rec vault.Record) verdict {
	v := verdict{at: time.Now()}
	res, err := s.probe(ctx, rec, rec.Test.Method, rec.Test.URL)
	if err != nil {
		v.err = errCannotVerify
		return v
	}
	switch o := res.GetOutcome(); o {
	case brokerv1.TestOutcome_TEST_OUTCOME_INVALID_CREDENTIALS, brokerv1.TestOutcome_TEST_OUTCOME_INSUFFICIENT_PERMISSIONS:
		v.reason, v.detail = appanswer.Reason(o), res.GetDetail()
	case brokerv1.TestOutcome_TEST_OUTCOME_OK:
		v.err = errCredentialWorks
	default:
		v.err = errCannotVerify
	}
	return v
}
