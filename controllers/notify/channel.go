package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
	"github.com/rosterhq/roster/connectors/webhook"
)

// NewChannel builds the channel a Notifier's spec declares, reading its Secrets, and
// names its kind.
func NewChannel(ctx context.Context, spec *identityv1alpha1.NotifierSpec, secrets connectors.SecretReader) (Channel, string, error) {
	switch {
	case spec.Slack != nil:
		p, err := chatPoster(ctx, spec.Slack.WebhookURLSecretRef, secrets)
		return &slack{p}, "Slack", err
	case spec.Teams != nil:
		p, err := chatPoster(ctx, spec.Teams.WebhookURLSecretRef, secrets)
		return &teams{p}, "Teams", err
	case spec.Webhook != nil:
		return newSignedWebhook(ctx, spec.Webhook, secrets)
	case spec.Email != nil:
		return newEmail(ctx, spec.Email, secrets)
	}
	return nil, "", &connectors.PermanentError{Message: "the Notifier has no channel"}
}

func newSignedWebhook(ctx context.Context, spec *identityv1alpha1.WebhookChannel, secrets connectors.SecretReader) (Channel, string, error) {
	signing, err := webhook.SigningSecrets(ctx, spec.SigningSecretRef.Name, secrets)
	if err != nil {
		return nil, "Webhook", err
	}
	opts := httpx.Options{}
	if err := httpx.FromSpec(ctx, &opts, nil, spec.TLS, secrets); err != nil {
		return nil, "Webhook", err
	}
	p, err := newPoster(spec.URL, opts)
	return &signedWebhook{poster: p, secrets: signing}, "Webhook", err
}

// chatPoster posts to a chat webhook whose URL, its own credential, is in a Secret.
func chatPoster(ctx context.Context, ref identityv1alpha1.SecretKeySelector, secrets connectors.SecretReader) (*poster, error) {
	raw, err := secrets.SecretValue(ctx, ref.Name, ref.Key)
	if err != nil {
		return nil, err
	}
	return newPoster(strings.TrimSpace(string(raw)), httpx.Options{})
}

// poster posts JSON to one URL, which may be a credential: errors never show it.
type poster struct {
	client *httpx.Client
	url    string
}

// Chat webhooks take about one message a second; a message's answer is a few bytes.
func newPoster(url string, opts httpx.Options) (*poster, error) {
	if err := httpx.SafeURL(url); err != nil {
		return nil, &connectors.PermanentError{Message: "the webhook URL must be https (http only to a loopback address), without a user name or password"}
	}
	opts.RequestsPerSecond, opts.Burst, opts.MaxConcurrency = 1, 1, 1
	opts.Timeout, opts.MaxAttempts, opts.MaxBackoff = 10*time.Second, 3, 10*time.Second
	opts.MaxBodyBytes = 64 << 10
	client, err := httpx.New(opts)
	if err != nil {
		return nil, err
	}
	return &poster{client: client, url: url}, nil
}

// post sends body; the Idempotency-Key lets a receiver drop a repeat, and lets the
// client retry a request whose answer was lost.
func (p *poster) post(ctx context.Context, m Message, body []byte, header http.Header) error {
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json")
	header.Set("Idempotency-Key", idempotencyKey(m))
	resp, err := p.client.Do(ctx, http.MethodPost, p.url, header, body)
	if err != nil {
		return redact(err, p.url)
	}
	switch {
	case resp.Status < 300:
		return nil
	case resp.Status >= 400 && resp.Status < 500 && resp.Status != http.StatusRequestTimeout:
		return &connectors.PermanentError{Status: resp.Status, Message: redact(errors.New(answer(resp)), p.url).Error()}
	}
	return fmt.Errorf("the channel answered %d: %s", resp.Status, redact(errors.New(answer(resp)), p.url))
}

func answer(resp *httpx.Response) string {
	return clip(oneLine(string(resp.Body)), 200)
}

// idempotencyKey is the same for every attempt to deliver the same events.
func idempotencyKey(m Message) string {
	h := sha256.New()
	for _, e := range m.Events {
		fmt.Fprintf(h, "%s\n", e.Key)
	}
	fmt.Fprintf(h, "%d", m.More)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// redact removes a URL that is a credential from an error, keeping its kind.
func redact(err error, url string) error {
	if err == nil || url == "" || !strings.Contains(err.Error(), url) {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), url, "<webhook URL>")
	var permanent *connectors.PermanentError
	if errors.As(err, &permanent) {
		return &connectors.PermanentError{Status: permanent.Status, Message: msg}
	}
	return errors.New(msg)
}
