package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// workers runs one long-lived worker (an engine, a directory syncer) per object, from
// the moment the manager starts it (on the leader only) until the object goes or the
// manager stops.
//
// A worker that crashes (a panic, recovered in its goroutines) is dropped and reported
// to crashed; it is built again at the next reconcile, after a backoff that grows with
// each crash, so that one object's bad data stops that object's work alone.
type workers[W interface{ Run(context.Context) error }] struct {
	started chan struct{}
	ctx     context.Context
	kind    string // for the crash metric and logs
	log     logr.Logger
	crashed func(types.NamespacedName)

	mu      sync.Mutex
	running map[types.NamespacedName]*runningWorker[W]
	crashes map[types.NamespacedName]*crashRecord
}

type crashRecord struct {
	at    time.Time
	count int
	err   error
}

// until is when a worker that crashed may be built again.
func (c *crashRecord) until() time.Time {
	return c.at.Add(min(time.Duration(1<<min(c.count, 9))*time.Second, 5*time.Minute))
}

// CrashedError: an object's worker crashed and waits out its backoff.
type CrashedError struct {
	Err   error
	Until time.Time
}

func (e *CrashedError) Error() string {
	return fmt.Sprintf("%v; Roster starts this object's work again at %s", e.Err, e.Until.UTC().Format(time.RFC3339))
}

func (e *CrashedError) Unwrap() error { return e.Err }

// crashed sets an object's conditions when its worker crashed (err is a CrashedError)
// and says how long its reconcile should wait.
func crashed(cond conditions, err error) (time.Duration, bool) {
	var c *CrashedError
	if !errors.As(err, &c) {
		return 0, false
	}
	cond.notReady(identityv1alpha1.ReasonInternalError, err.Error())
	return max(time.Until(c.Until), time.Second), true
}

type runningWorker[W any] struct {
	worker W
	cancel context.CancelFunc
	done   chan struct{}
}

func newWorkers[W interface{ Run(context.Context) error }](kind string, log logr.Logger, crashed func(types.NamespacedName)) *workers[W] {
	return &workers[W]{started: make(chan struct{}), kind: kind, log: log, crashed: crashed,
		running: map[types.NamespacedName]*runningWorker[W]{}, crashes: map[types.NamespacedName]*crashRecord{}}
}

// run lets workers start, until ctx ends; then it stops them all.
func (w *workers[W]) run(ctx context.Context) {
	w.ctx = ctx
	close(w.started)
	<-ctx.Done()
	w.mu.Lock()
	running := w.running
	w.running = map[types.NamespacedName]*runningWorker[W]{}
	w.mu.Unlock()
	for _, r := range running {
		r.cancel()
		<-r.done
	}
}

// errNotOurs: the object's shard is not this replica's (any more).
var errNotOurs = errors.New("another replica runs this object's shard")

// ensure hands the running worker of key to reconfigure, or starts the one build makes
// if ours still says the object's shard is this replica's: asked under the same lock
// as stopWhere takes, so that a shard given up has no worker started after it.
func (w *workers[W]) ensure(ctx context.Context, key types.NamespacedName, ours func() bool, reconfigure func(W), build func() W) (W, error) {
	var none W
	select {
	case <-w.started:
	case <-ctx.Done():
		return none, ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ours() {
		return none, errNotOurs
	}
	if r, ok := w.running[key]; ok {
		reconfigure(r.worker)
		return r.worker, nil
	}
	if c := w.crashes[key]; c != nil && time.Now().Before(c.until()) {
		return none, &CrashedError{Err: c.err, Until: c.until()}
	}
	worker := build()
	runCtx, cancel := context.WithCancel(w.ctx)
	r := &runningWorker[W]{worker: worker, cancel: cancel, done: make(chan struct{})}
	w.running[key] = r
	go func() {
		defer close(r.done)
		if err := worker.Run(runCtx); err != nil {
			w.crash(key, r, err)
		}
	}()
	return worker, nil
}

// crash drops a crashed worker, counts the crash and reports it.
func (w *workers[W]) crash(key types.NamespacedName, r *runningWorker[W], err error) {
	w.mu.Lock()
	if w.running[key] == r {
		delete(w.running, key)
	}
	c := w.crashes[key]
	if c == nil {
		c = &crashRecord{}
		w.crashes[key] = c
	}
	c.at, c.err = time.Now(), err
	c.count++
	w.mu.Unlock()
	workerCrashes.WithLabelValues(w.kind, key.String()).Inc()
	w.log.Error(err, "A worker crashed; its object's work stops until it starts again", "kind", w.kind, "object", key.String(), "crashes", c.count)
	if w.crashed != nil {
		w.crashed(key)
	}
}

// get returns the worker of key, if one runs.
func (w *workers[W]) get(key types.NamespacedName) (W, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.running[key]
	if !ok {
		var none W
		return none, false
	}
	return r.worker, true
}

// stop stops the worker of key and waits for it; false if none ran.
func (w *workers[W]) stop(key types.NamespacedName) bool {
	w.mu.Lock()
	r, ok := w.running[key]
	delete(w.running, key)
	delete(w.crashes, key)
	w.mu.Unlock()
	if ok {
		r.cancel()
		<-r.done
	}
	return ok
}

// stopWhere stops the workers of the keys that match and waits for them.
func (w *workers[W]) stopWhere(match func(types.NamespacedName) bool) []types.NamespacedName {
	w.mu.Lock()
	var stopped []types.NamespacedName
	var stopping []*runningWorker[W]
	for key, r := range w.running {
		if match(key) {
			stopped = append(stopped, key)
			stopping = append(stopping, r)
			delete(w.running, key)
		}
	}
	w.mu.Unlock()
	for _, r := range stopping {
		r.cancel()
		<-r.done
	}
	return stopped
}

// inNamespace returns the workers of a namespace by object name.
func (w *workers[W]) inNamespace(namespace string) map[string]W {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]W{}
	for key, r := range w.running {
		if key.Namespace == namespace {
			out[key.Name] = r.worker
		}
	}
	return out
}
