package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/controllers/notify"
	"github.com/rosterhq/roster/test/chatschema"
	"github.com/rosterhq/roster/test/smtpd"
)

// hostile is text from a directory or a person: a mention of everyone, a link, markup,
// a header break.
const hostile = "Ada <!channel> [win](http://evil.example) **bold** <b>x</b>\r\nBcc: all@example.com"

// messages are what the channels must carry: an event with facts and a command, one
// with hostile text, a long one, and a digest.
func messages(t *testing.T) []notify.Message {
	t.Helper()
	request := notify.Event{Kind: identityv1alpha1.NotifyAccessRequested, Namespace: "acme", Key: "r1",
		Title: "ada@example.com asks for wiki (groups eng) for ada, 8h0m0s", Lines: []string{"Why: incident 4711", "Approvers: grace@example.com"},
		Facts:   []notify.Fact{{Name: "For", Value: "ada"}, {Name: "Duration", Value: "8h0m0s"}},
		Command: fmt.Sprintf(identityv1alpha1.DecideCommand, "acme", "ada-wiki", identityv1alpha1.DecisionApprove), Concerned: []string{"grace@example.com"}}
	evil := notify.Event{Kind: identityv1alpha1.NotifyJoiner, Namespace: "acme", Key: "e1", Title: hostile + " has every account ready", Lines: []string{hostile},
		Facts: []notify.Fact{{Name: hostile, Value: hostile}}}
	long := notify.Event{Kind: identityv1alpha1.NotifyAppFailing, Namespace: "acme", Key: "l1", Title: strings.Repeat("very long title ", 40),
		Lines: []string{strings.Repeat("ünïcödé ", 1000)}}
	var burst []notify.Event
	for i := range 120 {
		burst = append(burst, joiner(i))
	}
	var out []notify.Message
	for _, events := range [][]notify.Event{{request}, {evil}, {long}, burst} {
		m, err := notify.Render(events, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// capture is a chat webhook's receiving end, keeping every body.
func capture(t *testing.T) (*httptest.Server, func() []json.RawMessage) {
	var mu sync.Mutex
	var bodies []json.RawMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, func() []json.RawMessage {
		mu.Lock()
		defer mu.Unlock()
		return append([]json.RawMessage(nil), bodies...)
	}
}

func send(t *testing.T, spec *identityv1alpha1.NotifierSpec, s secrets, ms []notify.Message) {
	t.Helper()
	channel, _, err := notify.NewChannel(context.Background(), spec, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := channel.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// Slack gets Block Kit messages that Slack's own types accept, within Block Kit's
// limits, with text from outside escaped so that it mentions nobody and links nowhere.
func TestSlackMessagesAreBlockKit(t *testing.T) {
	srv, bodies := capture(t)
	send(t, &identityv1alpha1.NotifierSpec{Slack: &identityv1alpha1.SlackChannel{WebhookURLSecretRef: identityv1alpha1.SecretKeySelector{Name: "slack", Key: "url"}}},
		secrets{"slack/url": srv.URL + "/services/T000/B000/XXXX\n"}, messages(t))
	sent := bodies()
	problems, err := chatschema.Check("slack", sent)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("Block Kit refuses what Roster sends:\n%s", strings.Join(problems, "\n"))
	}
	for i, body := range sent {
		var m struct {
			Text   string `json:"text"`
			Blocks []struct {
				Type   string                  `json:"type"`
				Text   struct{ Text string }   `json:"text"`
				Fields []struct{ Text string } `json:"fields"`
			} `json:"blocks"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Blocks) > 50 || m.Text == "" {
			t.Errorf("message %d: %d blocks, fallback text %q", i, len(m.Blocks), m.Text)
		}
		for _, b := range m.Blocks {
			limit := map[string]int{"header": 150, "section": 3000}[b.Type]
			if limit > 0 && len([]rune(b.Text.Text)) > limit || len(b.Fields) > 10 {
				t.Errorf("message %d: a %s block of %d characters and %d fields", i, b.Type, len([]rune(b.Text.Text)), len(b.Fields))
			}
		}
	}
	var evil struct {
		Text   string
		Blocks []struct {
			Text   struct{ Type, Text string }
			Fields []struct{ Text string }
		}
	}
	if err := json.Unmarshal(sent[1], &evil); err != nil {
		t.Fatal(err)
	}
	mrkdwn := []string{evil.Text}
	for _, b := range evil.Blocks {
		if b.Text.Type == "mrkdwn" {
			mrkdwn = append(mrkdwn, b.Text.Text)
		}
		for _, f := range b.Fields {
			mrkdwn = append(mrkdwn, f.Text)
		}
	}
	if all := strings.Join(mrkdwn, "\n"); strings.ContainsAny(all, "<>") || !strings.Contains(all, "&lt;!channel&gt;") {
		t.Fatalf("hostile text reached Slack unescaped: %s", all)
	}
	// The check can fail: a header in mrkdwn is not Block Kit.
	if problems, _ := chatschema.Check("slack", []json.RawMessage{json.RawMessage(`{"text":"x","blocks":[{"type":"header","text":{"type":"mrkdwn","text":"x"}}]}`)}); len(problems) == 0 {
		t.Fatal("the Block Kit check passed a header in mrkdwn")
	}
}

// Teams gets workflow messages with an Adaptive Card that Microsoft's library parses
// and validates without a warning; text goes in TextRuns, which show markdown as written.
func TestTeamsMessagesAreAdaptiveCards(t *testing.T) {
	srv, bodies := capture(t)
	send(t, &identityv1alpha1.NotifierSpec{Teams: &identityv1alpha1.TeamsChannel{WebhookURLSecretRef: identityv1alpha1.SecretKeySelector{Name: "teams", Key: "url"}}},
		secrets{"teams/url": srv.URL + "/workflows/abc/triggers/manual/paths/invoke?sig=secret"}, messages(t))
	sent := bodies()
	problems, err := chatschema.Check("teams", sent)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("the Adaptive Cards library finds problems in what Roster sends:\n%s", strings.Join(problems, "\n"))
	}
	if strings.Contains(string(sent[1]), `"TextBlock"`) {
		t.Fatal("text went into a TextBlock, where Teams reads markdown")
	}
	if problems, _ := chatschema.Check("teams", []json.RawMessage{json.RawMessage(`{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":{"type":"AdaptiveCard","version":"1.4","body":[{"type":"TextBlock","text":"x","weight":"Heavy"}]}}]}`)}); len(problems) == 0 {
		t.Fatal("the Adaptive Cards check passed a TextBlock with weight Heavy")
	}
}

// A chat webhook's URL is its credential: a bad one is refused without showing it.
func TestAWebhookURLIsNeverShown(t *testing.T) {
	url := "http://hooks.example.com/services/T000/B000/secret-part"
	_, _, err := notify.NewChannel(context.Background(), &identityv1alpha1.NotifierSpec{Slack: &identityv1alpha1.SlackChannel{
		WebhookURLSecretRef: identityv1alpha1.SecretKeySelector{Name: "slack", Key: "url"}}}, secrets{"slack/url": url})
	if err == nil || strings.Contains(err.Error(), "secret-part") {
		t.Fatalf("a plain-http webhook URL: %v", err)
	}
}

func emailSpec(s *smtpd.Server) (*identityv1alpha1.NotifierSpec, secrets) {
	host, port, _ := strings.Cut(s.Addr, ":")
	p, _ := strconv.Atoi(port)
	return &identityv1alpha1.NotifierSpec{Email: &identityv1alpha1.EmailChannel{Host: host, Port: int32(p), Security: identityv1alpha1.EmailStartTLS,
			AuthSecretRef: &identityv1alpha1.LocalObjectReference{Name: "smtp"}, TLS: &identityv1alpha1.TLSConfig{CASecretRef: &identityv1alpha1.SecretKeySelector{Name: "ca", Key: "ca.pem"}},
			From: "roster@example.com", To: []string{"it@example.com"}, AlsoTo: identityv1alpha1.CopyConcerned}},
		secrets{"smtp/username": s.Username, "smtp/password": s.Password, "ca/ca.pem": string(s.CA)}
}

// Email goes through a real SMTP server over STARTTLS, logged in, to the listed
// addresses and the people concerned; text from outside cannot add a header.
func TestEmailOverStartTLS(t *testing.T) {
	server := smtpd.Start(t)
	spec, s := emailSpec(server)
	ms := messages(t)
	send(t, spec, s, ms[:2])
	got := server.Messages()
	if len(got) != 2 {
		t.Fatalf("%d messages arrived", len(got))
	}
	request, evil := got[0], got[1]
	if !request.TLS || request.User != "roster" || request.From != "roster@example.com" ||
		strings.Join(request.To, ",") != "it@example.com,grace@example.com" {
		t.Fatalf("the request's email: TLS %v, user %q, from %q, to %v", request.TLS, request.User, request.From, request.To)
	}
	if subject, _ := new(mimeDecoder).DecodeHeader(request.Header.Get("Subject")); subject != ms[0].Title {
		t.Fatalf("subject %q", subject)
	}
	if !strings.Contains(request.Body, "kubectl patch accessrequest -n acme ada-wiki") {
		t.Fatalf("the body has no command:\n%s", request.Body)
	}
	if evil.Header.Get("Bcc") != "" || strings.Join(evil.To, ",") != "it@example.com" || len(evil.Header["Subject"]) != 1 {
		t.Fatalf("hostile text changed the headers: %v to %v", evil.Header, evil.To)
	}
}

// Mail is never sent in clear text, nor with a password the server refuses: both are
// failures a retry will not mend.
func TestEmailRefusesCleartextAndBadLogins(t *testing.T) {
	spec, s := emailSpec(smtpd.StartWithoutTLS(t))
	channel, _, err := notify.NewChannel(context.Background(), spec, s)
	if err != nil {
		t.Fatal(err)
	}
	var permanent *connectors.PermanentError
	if err := channel.Send(context.Background(), messages(t)[0]); !errors.As(err, &permanent) || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("a server without STARTTLS: %v", err)
	}
	spec, s = emailSpec(smtpd.Start(t))
	s["smtp/password"] = "wrong"
	channel, _, _ = notify.NewChannel(context.Background(), spec, s)
	if err := channel.Send(context.Background(), messages(t)[0]); !errors.As(err, &permanent) || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("a refused login: %v", err)
	}
}

type mimeDecoder = mime.WordDecoder
