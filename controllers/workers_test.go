package controllers

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
)

func always() bool { return true }

// blockingWorker runs until stopped.
type blockingWorker struct{ stopped atomic.Bool }

func (w *blockingWorker) Run(ctx context.Context) error {
	<-ctx.Done()
	w.stopped.Store(true)
	return nil
}

// TestAShardGivenUpStartsNoWorker: a worker starts only while its object's shard is
// this replica's, and stopWhere stops (and waits for) exactly the workers it names.
func TestAShardGivenUpStartsNoWorker(t *testing.T) {
	w := newWorkers[*blockingWorker]("test", logr.Discard(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	mine, theirs := types.NamespacedName{Namespace: "acme", Name: "chat"}, types.NamespacedName{Namespace: "acme", Name: "wiki"}
	chat, wiki := &blockingWorker{}, &blockingWorker{}
	if _, err := w.ensure(ctx, mine, always, func(*blockingWorker) {}, func() *blockingWorker { return chat }); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ensure(ctx, theirs, func() bool { return false }, func(*blockingWorker) {}, func() *blockingWorker { return wiki }); !errors.Is(err, errNotOurs) {
		t.Fatalf("ensure of another shard's object = %v, want errNotOurs", err)
	}
	if _, running := w.get(theirs); running {
		t.Fatal("a worker started for another shard's object")
	}
	stopped := w.stopWhere(func(key types.NamespacedName) bool { return key == mine })
	if len(stopped) != 1 || stopped[0] != mine || !chat.stopped.Load() {
		t.Fatalf("stopWhere stopped %v (worker stopped: %v), want %v, waited for", stopped, chat.stopped.Load(), mine)
	}
	if _, running := w.get(mine); running {
		t.Fatal("the stopped worker is still listed")
	}
}
