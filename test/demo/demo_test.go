package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemoOnce runs make demo ARGS=--once: every step must converge.
func TestDemoOnce(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), Options{Once: true, Out: &out, Dir: t.TempDir()}); err != nil {
		t.Fatalf("the demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"✓ Provisioning accounts", "ada.lovelace@acme.example", "✓ Deactivating every account",
		"every account off in", "chat: removed from sales, added to engineering", "nothing was recreated",
		"Slack · #it-requests", "susan.kare@acme.example asks for wiki (groups quarter-close)", "kubectl patch accessrequest -n acme susan-quarter-close",
		"approves her own request: refused by the API server (susan.kare@acme.example may not decide on this request",
		"Approved by rachel.carson@acme.example", "wiki active in [quarter-close]", "the wiki account was deactivated",
		"$ kubectl roster status -n acme", "app/chat", "adele.goldberg@acme.example has wiki (groups engineers) because:",
		"wiki   susan.kare@acme.example", "gains", "Every step converged",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out.String())
		}
	}
}
