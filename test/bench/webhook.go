package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/webhook"
	"github.com/rosterhq/roster/examples/webhook-receiver/receiver"
)

// webhookLatency is how long the bench's receiver takes to answer, as a small service
// writing to its own store would.
const webhookLatency = 2 * time.Millisecond

var webhookSecret = []byte("bench-webhook-signing-secret-0123456789")

// slowReceiver is the reference receiver answering after webhookLatency, counting the
// requests by type.
type slowReceiver struct {
	*receiver.Receiver
	mu    sync.Mutex
	types map[string]int
	// members counts the member additions the receiver was sent.
	members atomic.Int64
}

func (s *slowReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req webhook.Request
	_ = json.Unmarshal(body, &req)
	s.mu.Lock()
	s.types[req.Type]++
	s.mu.Unlock()
	if req.Members != nil {
		s.members.Add(int64(len(req.Members.Add)))
	}
	time.Sleep(webhookLatency)
	s.Receiver.ServeHTTP(w, r)
}

func (s *slowReceiver) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.types {
		out[k] = v
	}
	return out
}

func newSlowReceiver() (*slowReceiver, *httptest.Server, error) {
	r, err := receiver.New(receiver.Options{Secrets: [][]byte{webhookSecret}, PageSize: 500})
	if err != nil {
		return nil, nil, err
	}
	s := &slowReceiver{Receiver: r, types: map[string]int{}}
	return s, httptest.NewServer(s), nil
}

// webhookScenario provisions the organisation through the webhook connector into a
// receiver answering in 2 ms, against the floor of the same creates and member changes
// signed and posted straight to another such receiver at the operator's concurrency.
func (b *bench) webhookScenario(ctx context.Context) error {
	n := b.opts.WebhookUsers
	floor, err := b.webhookFloor(ctx, people("W", 1, n))
	if err != nil {
		return err
	}
	recv, srv, err := newSlowReceiver()
	if err != nil {
		return err
	}
	defer srv.Close()
	took, err := b.provisionThroughWebhook(ctx, srv.URL, recv, people("W", 1, n))
	if err != nil {
		return err
	}
	counts := recv.counts()
	changes := 0
	for kind, c := range counts {
		if strings.HasPrefix(kind, "account.") || strings.HasPrefix(kind, "group.") {
			changes += c
		}
	}
	scenario := "webhook"
	details := map[string]float64{"accounts": float64(n), "creates": float64(counts[webhook.TypeAccountCreate]),
		"memberRequests": float64(counts[webhook.TypeGroupMembers]), "listPages": float64(counts[webhook.TypeAccountsList] + counts[webhook.TypeGroupsList]),
		"accountsPerSecond": float64(n) / took.Seconds(), "floorAccountsPerSecond": float64(n) / floor.Seconds()}
	b.report.add(againstFloor(scenario, fmt.Sprintf("%d accounts with a group, receiver answering in %s", n, webhookLatency), took.Seconds(), floor.Seconds(), 1.3, "s", details))
	b.report.add(atMost(scenario, "change requests per account created", float64(changes)/float64(n), 1.05, "", nil))
	b.logf("  %d accounts in %s (floor %s, %.0f accounts/s against %.0f), %d change requests (%v)\n",
		n, took.Round(time.Millisecond), floor.Round(time.Millisecond), float64(n)/took.Seconds(), float64(n)/floor.Seconds(), changes, counts)
	return b.removeAll(ctx, &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: "webhook", Name: "receiver"}})
}

// webhookFloor signs and posts the creates and then the member changes (1,000 a
// request) straight to a receiver, at the operator's concurrency.
func (b *bench) webhookFloor(ctx context.Context, org []person) (time.Duration, error) {
	_, srv, err := newSlowReceiver()
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: b.opts.Concurrency}}
	post := func(req webhook.Request) (webhook.Answer, error) {
		req.Version, req.App, req.IdempotencyKey = webhook.Version, "webhook/floor", fmt.Sprintf("%032x", time.Now().UnixNano())
		body, _ := json.Marshal(req)
		r, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(body))
		r.Header.Set(webhook.HeaderSignature, webhook.Sign(time.Now(), body, webhookSecret))
		resp, err := client.Do(r)
		if err != nil {
			return webhook.Answer{}, err
		}
		defer resp.Body.Close()
		var a webhook.Answer
		err = json.NewDecoder(resp.Body).Decode(&a)
		if resp.StatusCode >= 300 {
			return a, fmt.Errorf("the floor's %s answered %d", req.Type, resp.StatusCode)
		}
		return a, err
	}
	ids := make([]string, len(org))
	start := time.Now()
	err = parallel(ctx, len(org), b.opts.Concurrency, func(i int) error {
		a, err := post(webhook.Request{Type: webhook.TypeAccountCreate, Account: &webhook.Account{Active: true,
			Attributes: map[string]any{"userName": org[i].email, "displayName": org[i].given + " " + org[i].family}}})
		if err == nil && a.Account != nil {
			ids[i] = a.Account.ID
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	g, err := post(webhook.Request{Type: webhook.TypeGroupEnsure, Group: &webhook.Group{DisplayName: "staff"}})
	if err != nil || g.Group == nil {
		return 0, fmt.Errorf("the floor's group: %v", err)
	}
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(len(ids), start+1000)]
		if _, err := post(webhook.Request{Type: webhook.TypeGroupMembers, Group: g.Group, Members: &webhook.Members{Add: chunk}}); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// provisionThroughWebhook creates the Users, then a Role granting the receiver's app
// with a group to everyone, and times it until the receiver holds every account in
// the group.
func (b *bench) provisionThroughWebhook(ctx context.Context, url string, recv *slowReceiver, org []person) (time.Duration, error) {
	ns := "webhook"
	concurrency := int32(b.opts.Concurrency)
	conn := &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "receiver"},
		Spec: identityv1alpha1.AppConnectionSpec{
			Webhook:         &identityv1alpha1.WebhookConnector{URL: url, SigningSecretRef: identityv1alpha1.LocalObjectReference{Name: "receiver"}},
			RateLimit:       &identityv1alpha1.RateLimit{Requests: 1000000, MaxConcurrency: &concurrency},
			SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxCount: &benchThreshold},
			Deprovision:     identityv1alpha1.DeprovisionPolicy{OnRemoval: identityv1alpha1.RemovalOrphan},
		},
	}
	if err := b.createAll(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "receiver"}, Data: map[string][]byte{webhook.KeySecret: webhookSecret}}, conn); err != nil {
		return 0, err
	}
	if err := b.createUnassigned(ctx, ns, org, nil); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := b.createAll(ctx, staffRole(ns, "receiver")); err != nil {
		return 0, err
	}
	n := int64(len(org))
	err := b.waitFor(ctx, timeoutFor(len(org)*20), 20*time.Millisecond, "provisioning through the webhook", func() (bool, string, error) {
		accounts, members := int64(recv.counts()[webhook.TypeAccountCreate]), recv.members.Load()
		return accounts >= n && members >= n, fmt.Sprintf("%d/%d accounts, %d/%d members", accounts, n, members, n), nil
	})
	return time.Since(start), err
}
