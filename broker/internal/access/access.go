// Package access records who got which credential: every worker call and
// every MintJobToken, allowed or denied. Workers call GetCredential thousands
// of times per job, so identical accesses are counted rather than stored one
// by one: the recorder keeps one event per distinct (job, connection,
// decision, reason, ...) and ships the batch to the connection service every
// interval, where ListAccessEvents serves it.
package access

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/validtext"
)

// Event is one access. It never holds a secret: reason is what the caller
// was told.
type Event struct {
	Workspace, Operation, Job, Recipe string
	Requested, Resolved, RuntimeUser  string
	Allowed                           bool
	Code, Reason                      string
}

// Sink stores a batch of events named batchID. A batch whose answer was
// lost is sent again under the same id, so the sink must record an id once
// (the connection service does).
type Sink func(ctx context.Context, batchID string, events []*connectionsv1.AccessEvent) error

// Recorder aggregates events and ships them.
type Recorder struct {
	sink     Sink
	broker   string
	max      int // distinct events held before new ones are dropped
	now      func() time.Time
	logger   *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[Event]*tally
	dropped int64
	held    int // events in unsent shipments, which count toward max

	// flushMu serialises Flush; unsent and seq belong to it.
	flushMu sync.Mutex
	unsent  []shipment // shipments not yet acknowledged, oldest first
	run     string     // random: names this process's shipments apart from every other's
	seq     int64

	setAside atomic.Int64 // since the last log line
	// SetAsideTotal counts the events set aside since the recorder started.
	SetAsideTotal atomic.Int64
}

// shipment is a batch of events under one id. One that was not
// acknowledged is sent again exactly as it was, before anything newer, so
// that the connection service records it once however often it is sent.
type shipment struct {
	id  string
	evs []*connectionsv1.AccessEvent
}

type tally struct {
	count       int64
	first, last time.Time
}

// New returns a recorder that ships to sink every interval, naming broker as
// the instance. It holds at most maxPending distinct events; beyond that,
// new distinct events are dropped and counted (and the drop is logged),
// while repeats of held events are still counted.
func New(sink Sink, broker string, interval time.Duration, maxPending int, logger *slog.Logger) *Recorder {
	return &Recorder{sink: sink, broker: broker, max: maxPending, interval: interval, now: time.Now, logger: logger,
		pending: map[Event]*tally{}, run: rand.Text()}
}

// Record notes one access.
func (r *Recorder) Record(e Event) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.pending[e]; ok {
		t.count++
		t.last = now
		return
	}
	if len(r.pending)+r.held >= r.max {
		r.dropped++
		return
	}
	r.pending[e] = &tally{count: 1, first: now, last: now}
}

// Run ships events every interval until ctx ends, then ships what is left
// (bounded by a few seconds).
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.Flush(fctx)
			cancel()
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, flushTimeout)
			r.Flush(fctx)
			cancel()
		}
	}
}

// flushTimeout bounds one shipment, so that a connection service that is
// down does not hold the recorder.
const flushTimeout = 10 * time.Second

// maxBatch is the most events one RecordAccess call carries (the API's cap).
const maxBatch = 1000

// Flush ships what is held now: first the shipments an earlier flush could
// not get acknowledged, as they were, then the events recorded since, under
// new ids. What cannot be shipped is kept for the next try.
func (r *Recorder) Flush(ctx context.Context) {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	defer r.logSetAside()
	r.mu.Lock()
	batch, dropped := r.pending, r.dropped
	r.pending, r.dropped = map[Event]*tally{}, 0
	r.held += len(batch) // until screened, so Record's bound still counts them
	r.mu.Unlock()
	// Built and checked outside the lock: Record is on every worker call.
	var out []*connectionsv1.AccessEvent
	for e, t := range batch {
		if ev := r.toProto(e, t); r.screen(ev) {
			out = append(out, ev)
		}
	}
	r.mu.Lock()
	r.held -= len(batch)
	for len(out) > 0 {
		n := min(len(out), maxBatch)
		r.seq++
		r.unsent = append(r.unsent, shipment{id: r.run + "-" + strconv.FormatInt(r.seq, 10), evs: out[:n]})
		r.held += n
		out = out[n:]
	}
	r.mu.Unlock()
	if dropped > 0 {
		r.logger.Error("access events dropped: the connection service is not taking them fast enough", "dropped", dropped)
	}
	for len(r.unsent) > 0 {
		sh := r.unsent[0]
		if err := r.ship(ctx, sh.id, sh.evs); err != nil {
			r.logger.Warn("could not record access events; keeping them for the next try", "shipments", len(r.unsent), "err", err)
			return
		}
		r.mu.Lock()
		r.held -= len(sh.evs)
		r.mu.Unlock()
		r.unsent = r.unsent[1:]
	}
}

// screen reports whether ev is fit for the record: what the connection
// service would refuse (its proto constraints; a NUL byte or invalid UTF-8
// in any string) is set aside and counted instead of being sent, so that one
// bad event never holds back the others.
func (r *Recorder) screen(ev *connectionsv1.AccessEvent) bool {
	if err := protovalidate.Validate(ev); err != nil {
		r.setAside.Add(1)
		return false
	}
	if err := validtext.Message(ev); err != nil {
		r.setAside.Add(1)
		return false
	}
	return true
}

// ship sends evs, marking in done those that need no further try. When the
// connection service refuses a batch as invalid (InvalidArgument: it stores
// a batch whole or not at all), the batch is split in halves until the
// events it refuses stand alone; those are set aside and counted, and the
// rest is stored. Any other error is returned: the events not yet done are
// kept for the next try.
func (r *Recorder) ship(ctx context.Context, id string, evs []*connectionsv1.AccessEvent) error {
	err := r.sink(ctx, id, evs)
	if err == nil || status.Code(err) != codes.InvalidArgument {
		return err
	}
	// The service refused something in the batch (so stored none of it):
	// halves, under ids derived from this one, until the bad event is
	// alone and set aside. A half stored before a failure is recognised by
	// its id when the shipment is sent again.
	if len(evs) == 1 {
		r.setAside.Add(1)
		return nil
	}
	h := len(evs) / 2
	if err := r.ship(ctx, id+".0", evs[:h]); err != nil {
		return err
	}
	return r.ship(ctx, id+".1", evs[h:])
}

// logSetAside logs, once per flush, how many events were set aside since the
// last such line. Their content is not logged: it is what made them bad.
func (r *Recorder) logSetAside() {
	if n := r.setAside.Swap(0); n > 0 {
		r.SetAsideTotal.Add(n)
		r.logger.Error("access events set aside: the connection service cannot store them (invalid text or fields); the others were recorded", "set_aside", n)
	}
}

func (r *Recorder) toProto(e Event, t *tally) *connectionsv1.AccessEvent {
	d := connectionsv1.AccessDecision_ACCESS_DECISION_DENIED
	if e.Allowed {
		d = connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED
	}
	return &connectionsv1.AccessEvent{
		WorkspaceId: e.Workspace, Operation: e.Operation, JobId: e.Job, RecipeId: e.Recipe,
		RequestedConnectionId: e.Requested, ResolvedConnectionId: e.Resolved, RuntimeUser: e.RuntimeUser,
		Decision: d, Code: e.Code, Reason: truncate(e.Reason, 1000), Count: t.count,
		FirstTime: timestamppb.New(t.first), LastTime: timestamppb.New(t.last), Broker: r.broker,
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
