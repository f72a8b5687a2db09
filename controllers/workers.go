package controllers

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// workers runs one long-lived worker (an engine, a directory syncer) per object, from
// the moment the manager starts it (on the leader only) until the object goes or the
// manager stops.
type workers[W interface{ Run(context.Context) }] struct {
	started chan struct{}
	ctx     context.Context

	mu      sync.Mutex
	running map[types.NamespacedName]*runningWorker[W]
}

type runningWorker[W any] struct {
	worker W
	cancel context.CancelFunc
	done   chan struct{}
}

func newWorkers[W interface{ Run(context.Context) }]() *workers[W] {
	return &workers[W]{started: make(chan struct{}), running: map[types.NamespacedName]*runningWorker[W]{}}
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

// ensure hands the running worker of key to reconfigure, or starts the one build makes.
func (w *workers[W]) ensure(ctx context.Context, key types.NamespacedName, reconfigure func(W), build func() W) (W, error) {
	var none W
	select {
	case <-w.started:
	case <-ctx.Done():
		return none, ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if r, ok := w.running[key]; ok {
		reconfigure(r.worker)
		return r.worker, nil
	}
	worker := build()
	runCtx, cancel := context.WithCancel(w.ctx)
	r := &runningWorker[W]{worker: worker, cancel: cancel, done: make(chan struct{})}
	w.running[key] = r
	go func() {
		defer close(r.done)
		worker.Run(runCtx)
	}()
	return worker, nil
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
	w.mu.Unlock()
	if ok {
		r.cancel()
		<-r.done
	}
	return ok
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
