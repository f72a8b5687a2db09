// Package notify tells people about what Roster did and what waits for them: lifecycle
// events published by the controllers reach each Notifier whose filter they match, are
// gathered into digests per event type, deduplicated, rate limited and delivered to the
// Notifier's channel (Slack, Teams, a signed webhook, email) at least once, on a
// goroutine of its own, so that a slow or failing channel never slows provisioning.
package notify

import (
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Event is one thing that happened, as templates see it (docs/notifications.md).
type Event struct {
	// Kind is the event type.
	Kind identityv1alpha1.NotificationEvent `json:"kind"`
	// Key identifies the event: an event whose key was delivered, or is waiting, is
	// not sent again.
	Key string `json:"-"`
	// Namespace is the organisation it happened in.
	Namespace string `json:"namespace"`
	// Time is when it happened.
	Time time.Time `json:"time"`
	// Title says it in one line.
	Title string `json:"title"`
	// Lines are the details, one per line.
	Lines []string `json:"lines,omitempty"`
	// Facts are named values shown beside the text.
	Facts []Fact `json:"facts,omitempty"`
	// Command is the kubectl command that acts on it, if any.
	Command string `json:"command,omitempty"`
	// Apps are the apps it is about.
	Apps []string `json:"apps,omitempty"`
	// Person is who it is about, if anyone.
	Person *Person `json:"person,omitempty"`
	// Concerned are the email addresses of people it concerns beside the channel's
	// readers: an access request's approvers, its requester.
	Concerned []string `json:"-"`
}

// Fact is a named value.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Person is who an event is about.
type Person struct {
	// Name is the User's object name, UserName their userName, DisplayName their name.
	Name        string `json:"name"`
	UserName    string `json:"userName"`
	DisplayName string `json:"displayName,omitempty"`
	// Labels are the User's labels, Roles the Roles they hold.
	Labels map[string]string `json:"-"`
	Roles  []string          `json:"-"`
}
