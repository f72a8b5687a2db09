package engine

import (
	"container/heap"
	"sync"
	"time"
)

// workQueue hands Users to the workers, leavers before joiners, each User to one worker
// at a time. A User added while a worker holds it is handed out again afterwards.
type workQueue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	urgent   []string
	normal   []string
	queued   map[string]bool
	inFlight map[string]bool
	again    map[string]bool // added while in flight
	urgentOf map[string]bool
	closed   bool
}

func newWorkQueue() *workQueue {
	q := &workQueue{queued: map[string]bool{}, inFlight: map[string]bool{}, again: map[string]bool{}, urgentOf: map[string]bool{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add queues a User; urgent ones (deprovisions) go before every normal one.
func (q *workQueue) add(user string, urgent bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inFlight[user] {
		q.again[user] = true
		q.urgentOf[user] = q.urgentOf[user] || urgent
		return
	}
	if q.queued[user] {
		if urgent && !q.urgentOf[user] {
			q.urgentOf[user] = true
			q.urgent = append(q.urgent, user) // the normal entry is skipped when popped
		}
		return
	}
	q.queued[user] = true
	q.urgentOf[user] = urgent
	if urgent {
		q.urgent = append(q.urgent, user)
	} else {
		q.normal = append(q.normal, user)
	}
	q.cond.Signal()
}

// get waits for a User; false once the queue is closed.
func (q *workQueue) get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return "", false
		}
		if user, ok := q.pop(); ok {
			q.inFlight[user] = true
			return user, true
		}
		q.cond.Wait()
	}
}

func (q *workQueue) pop() (string, bool) {
	for len(q.urgent) > 0 || len(q.normal) > 0 {
		var user string
		if len(q.urgent) > 0 {
			user, q.urgent = q.urgent[0], q.urgent[1:]
		} else {
			user, q.normal = q.normal[0], q.normal[1:]
		}
		if q.queued[user] {
			delete(q.queued, user)
			delete(q.urgentOf, user)
			return user, true
		}
	}
	return "", false
}

// done releases a User; if it was added meanwhile it is queued again.
func (q *workQueue) done(user string) {
	q.mu.Lock()
	delete(q.inFlight, user)
	again, urgent := q.again[user], q.urgentOf[user]
	delete(q.again, user)
	q.mu.Unlock()
	if again {
		q.add(user, urgent)
	}
}

func (q *workQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// timers wakes Users at set times (activeFrom, validUntil, deleteAfter, retries).
type timers struct {
	mu    sync.Mutex
	items timerHeap
	at    map[string]time.Time
	wake  chan struct{}
}

type timerItem struct {
	user string
	at   time.Time
}

type timerHeap []timerItem

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerItem)) }
func (h *timerHeap) Pop() any {
	old := *h
	item := old[len(old)-1]
	*h = old[:len(old)-1]
	return item
}

func newTimers() *timers { return &timers{at: map[string]time.Time{}, wake: make(chan struct{}, 1)} }

// schedule wakes user at t, unless it is already due to wake earlier.
func (t *timers) schedule(user string, at time.Time) {
	if at.IsZero() {
		return
	}
	t.mu.Lock()
	if cur, ok := t.at[user]; ok && !cur.After(at) {
		t.mu.Unlock()
		return
	}
	t.at[user] = at
	heap.Push(&t.items, timerItem{user, at})
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// due pops the Users whose time has come and returns when the next one is due.
func (t *timers) due(now time.Time) ([]string, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var users []string
	for len(t.items) > 0 && !t.items[0].at.After(now) {
		item := heap.Pop(&t.items).(timerItem)
		if t.at[item.user].Equal(item.at) {
			delete(t.at, item.user)
			users = append(users, item.user)
		}
	}
	if len(t.items) == 0 {
		return users, time.Time{}
	}
	return users, t.items[0].at
}
