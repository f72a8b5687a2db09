package receiver

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

var secret = []byte("receiver-test-secret-0123456789")

// deliver signs body as Roster does and hands it to r.
func deliver(t *testing.T, r *Receiver, body string) (int, map[string]any) {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "." + body))
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte(body)))
	req.Header.Set("Roster-Signature", "t="+ts+",v1="+hex.EncodeToString(mac.Sum(nil)))
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func TestItKeepsItsAccountsAndTheKeysItAppliedInItsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "accounts.json")
	r, err := New(Options{Secrets: [][]byte{secret}, File: file})
	if err != nil {
		t.Fatal(err)
	}
	create := `{"version":"roster.webhook/v1","type":"account.create","idempotencyKey":"0123456789abcdef0123456789abcdef","app":"acme/payroll","account":{"active":true,"attributes":{"userName":"ada"}}}`
	status, first := deliver(t, r, create)
	if status != http.StatusCreated {
		t.Fatalf("create answered %d %v", status, first)
	}

	restarted, err := New(Options{Secrets: [][]byte{secret}, File: file})
	if err != nil {
		t.Fatal(err)
	}
	if got := restarted.Accounts(); len(got) != 1 || got[0].Attributes["userName"] != "ada" {
		t.Fatalf("after a restart the receiver holds %+v", got)
	}
	status, again := deliver(t, restarted, create)
	if status != http.StatusCreated || again["account"].(map[string]any)["id"] != first["account"].(map[string]any)["id"] || restarted.Applied() != 0 {
		t.Fatalf("the same change delivered after a restart answered %d %v and applied %d; want the first answer, applied never again", status, again, restarted.Applied())
	}
	other := bytes.Replace([]byte(create), []byte("0123456789abcdef"), []byte("fedcba9876543210"), 1)
	if status, _ := deliver(t, restarted, string(other)); status != http.StatusConflict {
		t.Fatalf("a second create of ada under a new key answered %d, want 409", status)
	}
}
