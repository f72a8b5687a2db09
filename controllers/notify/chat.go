package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rosterhq/roster/connectors/webhook"
)

// slack posts Block Kit messages to an incoming webhook.
type slack struct{ *poster }

// Block Kit's limits: a header's text, a section's text, a field, fields per section.
const (
	slackHeader  = 150
	slackSection = 3000
	slackField   = 2000
	slackFields  = 10
)

// slackEscape keeps text from the app, the directory or a person (a display name, say)
// from mentioning everyone or forging a link: Slack reads <…> as a mention or a link.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func (s *slack) Send(ctx context.Context, m Message) error {
	return s.post(ctx, m, slackPayload(m), nil)
}

func slackPayload(m Message) []byte {
	text := func(typ, s string) map[string]any { return map[string]any{"type": typ, "text": s} }
	blocks := []map[string]any{{"type": "header", "text": text("plain_text", clip(m.Title, slackHeader))}}
	if m.Text != "" {
		blocks = append(blocks, map[string]any{"type": "section", "text": text("mrkdwn", clip(slackEscape.Replace(m.Text), slackSection))})
	}
	if len(m.Facts) > 0 {
		var fields []map[string]any
		for _, f := range m.Facts[:min(len(m.Facts), slackFields)] {
			fields = append(fields, text("mrkdwn", clip("*"+slackEscape.Replace(f.Name)+"*\n"+slackEscape.Replace(f.Value), slackField)))
		}
		blocks = append(blocks, map[string]any{"type": "section", "fields": fields})
	}
	if m.Command != "" {
		blocks = append(blocks, map[string]any{"type": "section", "text": text("mrkdwn", clip("```"+slackEscape.Replace(m.Command)+"```", slackSection))})
	}
	blocks = append(blocks, map[string]any{"type": "context", "elements": []map[string]any{text("mrkdwn", "Roster · "+slackEscape.Replace(namespaceOf(m)))}})
	body, _ := json.Marshal(map[string]any{"text": slackEscape.Replace(m.Title), "blocks": blocks})
	return body
}

// teams posts Adaptive Cards to a Teams workflow webhook.
type teams struct{ *poster }

func (t *teams) Send(ctx context.Context, m Message) error {
	return t.post(ctx, m, teamsPayload(m), nil)
}

// teamsPayload is a message with one Adaptive Card. Text goes in TextRuns, which
// Teams shows as written: no markdown, so nothing in a name can become a link.
func teamsPayload(m Message) []byte {
	run := func(s string, style map[string]any) map[string]any {
		r := map[string]any{"type": "TextRun", "text": s}
		for k, v := range style {
			r[k] = v
		}
		return r
	}
	rich := func(runs ...map[string]any) map[string]any {
		return map[string]any{"type": "RichTextBlock", "inlines": runs}
	}
	body := []map[string]any{rich(run(m.Title, map[string]any{"weight": "Bolder", "size": "Medium"}))}
	if m.Text != "" {
		body = append(body, rich(run(m.Text, nil)))
	}
	for _, f := range m.Facts {
		body = append(body, rich(run(f.Name+": ", map[string]any{"weight": "Bolder"}), run(f.Value, nil)))
	}
	if m.Command != "" {
		body = append(body, rich(run(m.Command, map[string]any{"fontType": "Monospace"})))
	}
	body = append(body, rich(run("Roster · "+namespaceOf(m), map[string]any{"isSubtle": true, "size": "Small"})))
	card := map[string]any{"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4",
		"body": body, "msteams": map[string]any{"width": "Full"}}
	out, _ := json.Marshal(map[string]any{"type": "message", "attachments": []map[string]any{
		{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}}})
	return out
}

// signedWebhook posts the message and its events as JSON, signed with the
// Roster-Signature header the webhook connector uses.
type signedWebhook struct {
	*poster
	secrets [][]byte
}

// WebhookMessage is the body a signed webhook receives (docs/notifications.md).
type WebhookMessage struct {
	// Key is the same for every delivery of the same events (also Idempotency-Key).
	Key     string  `json:"key"`
	Kind    string  `json:"kind"`
	Title   string  `json:"title"`
	Text    string  `json:"text"`
	Facts   []Fact  `json:"facts,omitempty"`
	Command string  `json:"command,omitempty"`
	Events  []Event `json:"events"`
	// More counts the events of a digest that did not fit.
	More int `json:"more,omitempty"`
}

func (w *signedWebhook) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(WebhookMessage{Key: idempotencyKey(m), Kind: string(m.Kind), Title: m.Title, Text: m.Text,
		Facts: m.Facts, Command: m.Command, Events: m.Events, More: m.More})
	if err != nil {
		return fmt.Errorf("encoding the message: %w", err)
	}
	header := http.Header{}
	header.Set(webhook.HeaderSignature, webhook.Sign(time.Now(), body, w.secrets...))
	return w.post(ctx, m, body, header)
}

func namespaceOf(m Message) string {
	if len(m.Events) == 0 {
		return ""
	}
	return m.Events[0].Namespace
}
