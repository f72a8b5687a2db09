package httpx

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

func TestRateLimitsBecomeBudgets(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	minute := &metav1.Duration{Duration: time.Minute}
	cases := []struct {
		name         string
		rl           identityv1alpha1.RateLimit
		rps          float64
		burst        int
		writesPerSec float64
		writeBurst   int
	}{
		{"requests a second", identityv1alpha1.RateLimit{Requests: 20}, 20, 20, 0, 0},
		{"a large budget bursts 100 at most", identityv1alpha1.RateLimit{Requests: 6000, Period: minute}, 100, 100, 0, 0},
		{"a burst set", identityv1alpha1.RateLimit{Requests: 600, Period: minute, Burst: i32(5)}, 10, 5, 0, 0},
		{"writes apart", identityv1alpha1.RateLimit{Requests: 600, Period: minute, Writes: i32(180), Burst: i32(10)}, 10, 10, 3, 10},
		{"a write burst no larger than the writes", identityv1alpha1.RateLimit{Requests: 600, Period: minute, Writes: i32(6)}, 10, 100, 0.1, 6},
	}
	for _, tc := range cases {
		rps, burst := RateOf(&tc.rl)
		wps, wburst := WriteRateOf(&tc.rl)
		if rps != tc.rps || burst != tc.burst || wps != tc.writesPerSec || wburst != tc.writeBurst {
			t.Errorf("%s: requests %v/s burst %d, writes %v/s burst %d; want %v, %d, %v, %d",
				tc.name, rps, burst, wps, wburst, tc.rps, tc.burst, tc.writesPerSec, tc.writeBurst)
		}
	}
}
