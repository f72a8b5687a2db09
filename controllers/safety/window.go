// Package safety counts deprovisions over a sliding window, so that a safety threshold
// holds deprovisions that arrive one at a time exactly like one large plan, and so that
// the count survives a restart (it is kept in the object's status).
package safety

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// slices is how many parts a window is counted in: a deprovision counts for at least
// the window and at most a slice longer, never less.
const slices = 20

// Window counts deprovisions sent within the last span.
type Window struct {
	span  time.Duration
	parts []identityv1alpha1.DeprovisionCount // oldest first
}

// NewWindow returns a window of span, holding what was counted before (from status).
func NewWindow(span time.Duration, counted []identityv1alpha1.DeprovisionCount) *Window {
	w := &Window{}
	w.SetSpan(span)
	for _, c := range counted {
		if c.Count > 0 {
			w.parts = append(w.parts, c)
		}
	}
	return w
}

// SetSpan changes how long a deprovision counts; 0 means the default window.
func (w *Window) SetSpan(span time.Duration) {
	if span <= 0 {
		span = identityv1alpha1.DefaultSafetyWindow
	}
	w.span = span
}

// Span is how long a deprovision counts.
func (w *Window) Span() time.Duration { return w.span }

func (w *Window) slice() time.Duration { return max(w.span/slices, time.Second) }

// Count is how many deprovisions were sent within the window before now.
func (w *Window) Count(now time.Time) int {
	w.prune(now)
	n := 0
	for _, p := range w.parts {
		n += int(p.Count)
	}
	return n
}

// Add counts n deprovisions sent now.
func (w *Window) Add(now time.Time, n int) {
	if n <= 0 {
		return
	}
	w.prune(now)
	start := now.Truncate(w.slice())
	if last := len(w.parts) - 1; last >= 0 && w.parts[last].Since.Time.Equal(start) {
		w.parts[last].Count += int32(n)
		return
	}
	w.parts = append(w.parts, identityv1alpha1.DeprovisionCount{Since: metav1.NewTime(start), Count: int32(n)})
}

// NextExpiry is when the oldest counted deprovisions stop counting; zero if none count.
func (w *Window) NextExpiry() time.Time {
	if len(w.parts) == 0 {
		return time.Time{}
	}
	return w.parts[0].Since.Add(w.slice() + w.span)
}

// Counted is what the window holds, for the object's status.
func (w *Window) Counted(now time.Time) []identityv1alpha1.DeprovisionCount {
	w.prune(now)
	return append([]identityv1alpha1.DeprovisionCount(nil), w.parts...)
}

func (w *Window) prune(now time.Time) {
	keep := w.parts[:0]
	for _, p := range w.parts {
		if p.Since.Add(w.slice() + w.span).After(now) {
			keep = append(keep, p)
		}
	}
	w.parts = keep
}

// Exceeds reports whether n deprovisions within a window go over the threshold, of
// total under management (either bound that is set).
func Exceeds(n, total int, maxCount, maxPercent *int32) bool {
	if maxCount != nil && n > int(*maxCount) {
		return true
	}
	return maxPercent != nil && n*100 > int(*maxPercent)*max(total, 1)
}

// PlanID identifies a set of names held for approval, so that an approval covers
// exactly that set.
func PlanID(names []string) string {
	sum := sha256.Sum256([]byte(strings.Join(names, "\n")))
	return hex.EncodeToString(sum[:6])
}
