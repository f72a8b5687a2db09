package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a signature's timestamp may be from the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Sign returns the Roster-Signature header for a body sent at t: the timestamp, and
// one HMAC-SHA256 over "timestamp.body" per secret (two during a rotation).
func Sign(t time.Time, body []byte, secrets ...[]byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	parts := []string{"t=" + ts}
	for _, secret := range secrets {
		parts = append(parts, "v1="+signature(secret, ts, body))
	}
	return strings.Join(parts, ",")
}

func signature(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Errors Verify returns.
var (
	ErrNoSignature  = errors.New("no Roster-Signature header with a timestamp and a v1 signature")
	ErrStale        = errors.New("the signature's timestamp is outside the tolerance: a replay or a wrong clock")
	ErrBadSignature = errors.New("no signature matches the body with any secret")
)

// Verify checks a Roster-Signature header against the body as received: its timestamp
// within tolerance of now, and a v1 signature made with one of the secrets.
func Verify(header string, body []byte, now time.Time, tolerance time.Duration, secrets ...[]byte) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sent, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	if d := now.Sub(time.Unix(sent, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w (%s apart)", ErrStale, d.Round(time.Second))
	}
	for _, secret := range secrets {
		want := signature(secret, ts, body)
		for _, got := range sigs {
			if hmac.Equal([]byte(got), []byte(want)) {
				return nil
			}
		}
	}
	return ErrBadSignature
}
