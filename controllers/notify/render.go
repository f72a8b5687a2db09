package notify

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/template"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Message is what a channel sends: one event, or a digest of many of one type.
type Message struct {
	Kind    identityv1alpha1.NotificationEvent
	Title   string
	Text    string
	Facts   []Fact
	Command string
	// Events are the events the message carries, More how many more it only counts.
	Events []Event
	More   int
	// To are the addresses of the people the events concern.
	To []string
}

// digestLines bounds the events a digest lists; the rest are counted.
const digestLines = 50

// maxText bounds a message's text; channels bound it further where they must.
const maxText = 3000

// digestTitles say what a digest of each event type is about.
var digestTitles = map[identityv1alpha1.NotificationEvent]string{
	identityv1alpha1.NotifyJoiner:            "joiners have every account ready",
	identityv1alpha1.NotifyMover:             "movers have their new access in place",
	identityv1alpha1.NotifyLeaver:            "leavers have every account off",
	identityv1alpha1.NotifyAccessRequested:   "access requests wait for approval",
	identityv1alpha1.NotifyAccessApproved:    "access requests were approved",
	identityv1alpha1.NotifyAccessDenied:      "access requests were denied",
	identityv1alpha1.NotifyAccessExpiring:    "granted accesses end within 24 hours",
	identityv1alpha1.NotifyAccessExpired:     "granted accesses ended",
	identityv1alpha1.NotifyAccessRevoked:     "granted accesses were revoked",
	identityv1alpha1.NotifyPlanHeld:          "plans are held by the safety threshold",
	identityv1alpha1.NotifyAppFailing:        "apps are failing",
	identityv1alpha1.NotifyAppRecovered:      "apps recovered",
	identityv1alpha1.NotifyUnmanagedAccounts: "apps have unmanaged accounts",
}

// Templates word events of some types instead of the defaults.
type Templates map[identityv1alpha1.NotificationEvent]Wording

// Wording is a compiled title and text template; either may be nil.
type Wording struct {
	Title, Text *template.Template
}

// CompileTemplates compiles a Notifier's templates; the error names the event type.
func CompileTemplates(specs []identityv1alpha1.NotificationTemplate) (Templates, error) {
	out := Templates{}
	for _, s := range specs {
		var w Wording
		var err error
		if w.Title, err = compile(s.Title); err != nil {
			return nil, fmt.Errorf("the %s title template: %w", s.Event, err)
		}
		if w.Text, err = compile(s.Text); err != nil {
			return nil, fmt.Errorf("the %s text template: %w", s.Event, err)
		}
		out[s.Event] = w
	}
	return out, nil
}

func compile(text string) (*template.Template, error) {
	if text == "" {
		return nil, nil
	}
	return template.New("").Option("missingkey=error").Parse(text)
}

// Render words events of one type as a message: an event alone, or a digest listing
// them. A template that fails on an event leaves that event its default wording, and
// the error says why.
func Render(events []Event, more int, tpl Templates) (Message, error) {
	m := Message{Kind: events[0].Kind, Events: events, More: more}
	var errs []error
	titles := make([]string, len(events))
	for i, e := range events {
		titles[i] = execute(tpl[e.Kind].Title, e, e.Title, &errs)
		for _, to := range e.Concerned {
			if !slices.Contains(m.To, to) {
				m.To = append(m.To, to)
			}
		}
	}
	if len(events) == 1 && more == 0 {
		e := events[0]
		m.Title, m.Facts, m.Command = titles[0], e.Facts, e.Command
		m.Text = execute(tpl[e.Kind].Text, e, strings.Join(e.Lines, "\n"), &errs)
	} else {
		m.Title = fmt.Sprintf("%d %s", len(events)+more, digestTitles[m.Kind])
		var b strings.Builder
		for i, e := range events[:min(len(events), digestLines)] {
			fmt.Fprintf(&b, "• %s\n", titles[i])
			if e.Command != "" {
				fmt.Fprintf(&b, "  %s\n", e.Command)
			}
		}
		if rest := len(events) + more - min(len(events), digestLines); rest > 0 {
			fmt.Fprintf(&b, "… and %d more\n", rest)
		}
		m.Text = strings.TrimSuffix(b.String(), "\n")
	}
	m.Title, m.Text = clip(oneLine(m.Title), 250), clip(m.Text, maxText)
	return m, errors.Join(errs...)
}

// execute runs a template on an event, its output bounded; the default on failure.
func execute(t *template.Template, e Event, fallback string, errs *[]error) string {
	if t == nil {
		return fallback
	}
	out := &boundedBuffer{limit: 16 << 10}
	if err := t.Execute(out, e); err != nil {
		*errs = append(*errs, fmt.Errorf("the %s template: %w", e.Kind, err))
		return fallback
	}
	return out.String()
}

// boundedBuffer keeps the first limit bytes written to it and fails after.
type boundedBuffer struct {
	bytes.Buffer
	limit int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.limit {
		return 0, fmt.Errorf("the output is longer than %d bytes", b.limit)
	}
	return b.Buffer.Write(p)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// clip cuts s to at most n bytes, at a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
