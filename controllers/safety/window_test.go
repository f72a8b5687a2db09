package safety

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

func TestWindowCountsWhatWasSentWithinItsSpan(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	w := NewWindow(10*time.Minute, nil)
	w.Add(t0, 3)
	w.Add(t0.Add(time.Minute), 2)
	cases := []struct {
		reason string
		at     time.Time
		want   int
	}{
		{"both sends count right after", t0.Add(2 * time.Minute), 5},
		{"both count just before the first leaves the window", t0.Add(10*time.Minute - time.Second), 5},
		{"the first stops counting a slice after the window", t0.Add(10*time.Minute + 31*time.Second), 2},
		{"nothing counts once the window has passed both", t0.Add(12 * time.Minute), 0},
	}
	for _, tc := range cases {
		if got := w.Count(tc.at); got != tc.want {
			t.Errorf("%s: Count = %d, want %d", tc.reason, got, tc.want)
		}
	}
}

func TestWindowSurvivesARestartThroughStatus(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	before := NewWindow(0, nil)
	for i := range 25 {
		before.Add(t0.Add(time.Duration(i)*5*time.Millisecond), 1)
	}
	status := before.Counted(t0.Add(time.Second))
	if len(status) != 1 || status[0].Count != 25 {
		t.Fatalf("25 sends 5 ms apart are kept as %+v, want one slice of 25", status)
	}
	after := NewWindow(0, status)
	if got := after.Count(t0.Add(time.Minute)); got != 25 {
		t.Fatalf("after a restart the window counts %d, want 25", got)
	}
	if exp := after.NextExpiry(); !exp.After(t0.Add(identityv1alpha1.DefaultSafetyWindow)) {
		t.Fatalf("the sends stop counting at %s, before the default window has passed", exp)
	}
	stale := NewWindow(time.Minute, []identityv1alpha1.DeprovisionCount{{Since: metav1.NewTime(t0.Add(-time.Hour)), Count: 40}})
	if got := stale.Count(t0); got != 0 {
		t.Fatalf("sends an hour old count %d in a window of a minute, want 0", got)
	}
}

func TestExceeds(t *testing.T) {
	n := func(v int32) *int32 { return &v }
	cases := []struct {
		reason           string
		count, total     int
		maxCount, maxPct *int32
		want             bool
	}{
		{"at the count is allowed", 25, 1000, n(25), nil, false},
		{"one over the count is not", 26, 1000, n(25), nil, true},
		{"at the percent is allowed", 10, 100, nil, n(10), false},
		{"over the percent is not", 11, 100, nil, n(10), true},
		{"either bound holds", 11, 100, n(50), n(10), true},
		{"no bound, no limit", 1000, 10, nil, nil, false},
	}
	for _, tc := range cases {
		if got := Exceeds(tc.count, tc.total, tc.maxCount, tc.maxPct); got != tc.want {
			t.Errorf("%s: Exceeds = %v, want %v", tc.reason, got, tc.want)
		}
	}
}
