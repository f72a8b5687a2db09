package safety

import (
	"fmt"
	"runtime/debug"
	"sync"
)

// Crash is a panic recovered in a worker goroutine: one object's work stops and says
// why, instead of the whole operator.
type Crash struct {
	Value any
	Stack []byte
}

func (c *Crash) Error() string { return fmt.Sprintf("internal error, recovered: %v", c.Value) }

// Contain runs fn; a panic in it is recovered and handed to crashed.
func Contain(crashed func(*Crash), fn func()) {
	defer func() {
		if v := recover(); v != nil {
			crashed(&Crash{Value: v, Stack: debug.Stack()})
		}
	}()
	fn()
}

// Crashes keeps the first crash of a group of goroutines and calls stop on it, so that
// the others end.
type Crashes struct {
	once  sync.Once
	first *Crash
	stop  func()
}

// NewCrashes returns a group whose first crash calls stop.
func NewCrashes(stop func()) *Crashes { return &Crashes{stop: stop} }

// Go runs fn in a goroutine of wg, containing a panic.
func (c *Crashes) Go(wg *sync.WaitGroup, fn func()) { wg.Go(func() { Contain(c.record, fn) }) }

// Run runs fn here, containing a panic.
func (c *Crashes) Run(fn func()) { Contain(c.record, fn) }

func (c *Crashes) record(crash *Crash) {
	c.once.Do(func() {
		c.first = crash
		c.stop()
	})
}

// Err is the first crash, once the group's goroutines are done; nil if none crashed.
func (c *Crashes) Err() error {
	if c.first == nil {
		return nil
	}
	return c.first
}
