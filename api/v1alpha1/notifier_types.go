package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NotificationEvent is a lifecycle event a Notifier can tell people about.
// +kubebuilder:validation:Enum=Joiner;Mover;Leaver;AccessRequested;AccessApproved;AccessDenied;AccessExpiring;AccessExpired;AccessRevoked;PlanHeld;AppFailing;AppRecovered;UnmanagedAccounts
type NotificationEvent string

const (
	// NotifyJoiner: every account of a new person is ready; lists them.
	NotifyJoiner NotificationEvent = "Joiner"
	// NotifyMover: a person's apps changed (gained or lost) and every change is in place.
	NotifyMover NotificationEvent = "Mover"
	// NotifyLeaver: every account of a person who left is off; says how long each took.
	NotifyLeaver NotificationEvent = "Leaver"
	// NotifyAccessRequested: an access request waits for approval; names its approvers
	// and gives the command to approve or deny.
	NotifyAccessRequested NotificationEvent = "AccessRequested"
	// NotifyAccessApproved: an access request was approved.
	NotifyAccessApproved NotificationEvent = "AccessApproved"
	// NotifyAccessDenied: an access request was denied, by an approver or the policy.
	NotifyAccessDenied NotificationEvent = "AccessDenied"
	// NotifyAccessExpiring: granted access ends within 24 hours.
	NotifyAccessExpiring NotificationEvent = "AccessExpiring"
	// NotifyAccessExpired: granted access ended at its expiry and was removed.
	NotifyAccessExpired NotificationEvent = "AccessExpired"
	// NotifyAccessRevoked: granted access was revoked or withdrawn early and was removed.
	NotifyAccessRevoked NotificationEvent = "AccessRevoked"
	// NotifyPlanHeld: the safety threshold holds a plan of an app or a directory sync;
	// gives the command to approve it.
	NotifyPlanHeld NotificationEvent = "PlanHeld"
	// NotifyAppFailing: an app cannot be provisioned (failing or quarantined).
	NotifyAppFailing NotificationEvent = "AppFailing"
	// NotifyAppRecovered: an app that was failing is provisioned again.
	NotifyAppRecovered NotificationEvent = "AppRecovered"
	// NotifyUnmanagedAccounts: accounts no User holds were found in an app.
	NotifyUnmanagedAccounts NotificationEvent = "UnmanagedAccounts"
)

// SlackChannel posts to a Slack incoming webhook, as Block Kit messages.
type SlackChannel struct {
	// webhookURLSecretRef names the Secret key holding the incoming webhook's URL, which
	// is its credential.
	// +required
	WebhookURLSecretRef SecretKeySelector `json:"webhookURLSecretRef"`
}

// TeamsChannel posts to a Microsoft Teams workflow webhook ("Post to a channel when a
// webhook request is received"), as Adaptive Cards.
type TeamsChannel struct {
	// webhookURLSecretRef names the Secret key holding the workflow's URL, which is its
	// credential.
	// +required
	WebhookURLSecretRef SecretKeySelector `json:"webhookURLSecretRef"`
}

// WebhookChannel posts JSON to a receiver the company runs, signed as the webhook
// connector's requests are.
type WebhookChannel struct {
	// url receives every message: https, or http only to a loopback address.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",message="url must be an https URL (http only to localhost, 127.0.0.1 or ::1): messages carry people's details"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="url must not carry a user name or password: put credentials in a Secret"
	URL string `json:"url"`

	// signingSecretRef names the Secret whose key "secret" signs every message
	// (HMAC-SHA256, the Roster-Signature header), with "previousSecret" during a
	// rotation.
	// +required
	SigningSecretRef LocalObjectReference `json:"signingSecretRef"`

	// tls adjusts certificate verification.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`
}

// EmailSecurity is how the connection to the mail server is protected.
// +kubebuilder:validation:Enum=StartTLS;TLS
type EmailSecurity string

const (
	// EmailStartTLS upgrades a plain connection (port 587) with STARTTLS, and refuses a
	// server that does not offer it.
	EmailStartTLS EmailSecurity = "StartTLS"
	// EmailTLS speaks TLS from the first byte (port 465).
	EmailTLS EmailSecurity = "TLS"
)

// CopyPolicy says whether an email also goes to the people an event concerns.
// +kubebuilder:validation:Enum=Concerned;None
type CopyPolicy string

const (
	// CopyConcerned also writes to the people an event concerns: an access request's
	// approvers while it waits, its requester and person once decided.
	CopyConcerned CopyPolicy = "Concerned"
	// CopyNone writes only to the listed addresses.
	CopyNone CopyPolicy = "None"
)

// EmailChannel sends email through an SMTP server.
type EmailChannel struct {
	// host is the mail server's host name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`

	// port of the mail server: 587 for StartTLS, 465 for TLS.
	// +optional
	// +kubebuilder:default=587
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// security is StartTLS (the default) or TLS. Mail is never sent in clear text.
	// +optional
	// +kubebuilder:default=StartTLS
	Security EmailSecurity `json:"security,omitempty"`

	// authSecretRef names a Secret with the keys "username" and "password" to log in
	// with (SMTP AUTH PLAIN, over the encrypted connection only). Unset: no login.
	// +optional
	AuthSecretRef *LocalObjectReference `json:"authSecretRef,omitempty"`

	// tls adjusts certificate verification.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// from is the sender address.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s<>]+@[^@\s<>]+$`
	From string `json:"from"`

	// to are the addresses every message goes to.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=254
	// +kubebuilder:validation:items:Pattern=`^[^@\s<>]+@[^@\s<>]+$`
	To []string `json:"to,omitempty"`

	// alsoTo is Concerned (the default) to also write to the people an event concerns
	// (an access request's approvers, requester and person), or None.
	// +optional
	// +kubebuilder:default=Concerned
	AlsoTo CopyPolicy `json:"alsoTo,omitempty"`
}

// NotificationFilter narrows the events that reach a Notifier. Each part set must
// match; an event without what a part looks at (an app event has no person) does not.
type NotificationFilter struct {
	// apps keeps events about these apps (AppConnection names).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	Apps []string `json:"apps,omitempty"`

	// roles keeps events about people who hold any of these Roles.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	Roles []string `json:"roles,omitempty"`

	// users keeps events about people whose User labels match.
	// +optional
	Users *metav1.LabelSelector `json:"users,omitempty"`
}

// NotificationDigest gathers bursts into one message per event type.
type NotificationDigest struct {
	// quiet is how long a Notifier waits after an event for more of its type before it
	// sends what it gathered.
	// +optional
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('0s') && duration(self) <= duration('10m')",message="quiet must be a duration from 0s to 10m, such as 5s"
	Quiet *metav1.Duration `json:"quiet,omitempty"`

	// maxWait is the longest an event waits for its message, however busy the burst.
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="maxWait must be a duration from 1s to 1h, such as 1m"
	MaxWait *metav1.Duration `json:"maxWait,omitempty"`
}

// NotificationTemplate replaces the default wording of one event type. Templates are
// Go text/templates over the event (see docs/notifications.md); they never see secrets.
type NotificationTemplate struct {
	// event is the event type the template words.
	// +required
	Event NotificationEvent `json:"event"`

	// title is the message's title (the email's subject).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Title string `json:"title,omitempty"`

	// text is the message's body.
	// +optional
	// +kubebuilder:validation:MaxLength=8192
	Text string `json:"text,omitempty"`
}

// NotifierSpec declares one channel and what reaches it.
// +kubebuilder:validation:XValidation:rule="[has(self.slack), has(self.teams), has(self.webhook), has(self.email)].filter(x, x).size() == 1",message="set exactly one channel: slack, teams, webhook or email"
type NotifierSpec struct {
	// slack posts to a Slack incoming webhook.
	// +optional
	Slack *SlackChannel `json:"slack,omitempty"`

	// teams posts to a Microsoft Teams workflow webhook.
	// +optional
	Teams *TeamsChannel `json:"teams,omitempty"`

	// webhook posts signed JSON to a receiver the company runs.
	// +optional
	Webhook *WebhookChannel `json:"webhook,omitempty"`

	// email sends through an SMTP server.
	// +optional
	Email *EmailChannel `json:"email,omitempty"`

	// events are the event types that reach the channel. Unset: all of them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	Events []NotificationEvent `json:"events,omitempty"`

	// filter narrows the events by app, Role or User labels.
	// +optional
	Filter *NotificationFilter `json:"filter,omitempty"`

	// digest gathers bursts into one message per event type.
	// +optional
	// +kubebuilder:default={}
	Digest NotificationDigest `json:"digest,omitempty"`

	// messagesPerMinute bounds the messages sent to the channel.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	MessagesPerMinute int32 `json:"messagesPerMinute,omitempty"`

	// templates replace the default wording of some event types.
	// +optional
	// +listType=map
	// +listMapKey=event
	// +kubebuilder:validation:MaxItems=16
	Templates []NotificationTemplate `json:"templates,omitempty"`
}

// NotifierStatus is how delivery goes.
type NotifierStatus struct {
	CommonStatus `json:",inline"`

	// channel is the kind of channel: Slack, Teams, Webhook or Email.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Channel string `json:"channel,omitempty"`

	// delivered counts the events delivered since the operator started.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Delivered int64 `json:"delivered,omitempty"`

	// messages counts the messages sent (a digest carries many events).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Messages int64 `json:"messages,omitempty"`

	// failed counts the events given up on after every retry.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Failed int64 `json:"failed,omitempty"`

	// pending counts the events waiting for their message.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Pending int64 `json:"pending,omitempty"`

	// lastDeliveryTime is when a message was last delivered.
	// +optional
	LastDeliveryTime *metav1.Time `json:"lastDeliveryTime,omitempty"`

	// lastFailureTime is when a delivery last failed.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// lastFailure says why.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastFailure string `json:"lastFailure,omitempty"`
}

// Notifier sends the lifecycle events people act on (joiners, leavers, access requests,
// held plans, failing apps) to one channel: Slack, Microsoft Teams, a signed webhook or
// email.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=roster,shortName=ntf
// +kubebuilder:printcolumn:name="Channel",type=string,JSONPath=`.status.channel`
// +kubebuilder:printcolumn:name="Delivered",type=integer,JSONPath=`.status.delivered`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Notifier struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the channel.
	// +required
	Spec NotifierSpec `json:"spec"`

	// status is how delivery goes.
	// +optional
	Status NotifierStatus `json:"status,omitempty"`
}

// NotifierList is a list of Notifiers.
// +kubebuilder:object:root=true
type NotifierList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Notifier `json:"items"`
}

func init() {
	register(&Notifier{}, &NotifierList{})
}
