package controllers

import (
	"fmt"
	"maps"
	"net/mail"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/notify"
)

// News for Notifiers: what a change of status means to people, decided by comparing the
// status before and after one reconcile, so that a restart, which finds statuses as
// they were, tells nobody anything twice.

// person is how an event names the User it is about.
func person(u *identityv1alpha1.User, m *Membership) *notify.Person {
	if u == nil {
		return nil
	}
	p := &notify.Person{Name: u.Name, UserName: u.Spec.UserName, DisplayName: u.Spec.DisplayName, Labels: maps.Clone(u.Labels)}
	if p.DisplayName == "" && u.Spec.Name != nil {
		p.DisplayName = strings.TrimSpace(u.Spec.Name.GivenName + " " + u.Spec.Name.FamilyName)
	}
	if m != nil {
		p.Roles = m.RolesOf(u.Namespace, u.Name)
	}
	return p
}

// emailOf is where to write to a User: their primary email, or their userName when it
// is an address.
func emailOf(u *identityv1alpha1.User) string {
	for _, e := range u.Spec.Emails {
		if e.Primary {
			return e.Value
		}
	}
	if len(u.Spec.Emails) > 0 {
		return u.Spec.Emails[0].Value
	}
	if a, err := mail.ParseAddress(u.Spec.UserName); err == nil && a.Name == "" {
		return a.Address
	}
	return ""
}

// activeApps are the apps where a status shows an active account.
func activeApps(accounts []identityv1alpha1.UserAccount) []string {
	var out []string
	for _, a := range accounts {
		if a.State == identityv1alpha1.AccountStateActive {
			out = append(out, a.App)
		}
	}
	return out
}

func isReady(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, identityv1alpha1.ConditionReady)
}

// userNews says whether a User just became a joiner with every account ready, a mover
// with every change in place, or a leaver with every account off. lastReady are the
// apps the User held when last ready, if known (else the status before tells); leftAt
// is when they left, offAt when each account went off, as precisely as known.
func userNews(before, after *identityv1alpha1.User, lastReady []string, known bool, leftAt time.Time, offAt map[string]time.Time) (notify.Event, bool) {
	was, now := activeApps(before.Status.Accounts), activeApps(after.Status.Accounts)
	if !known {
		lastReady = was
	}
	e := notify.Event{Namespace: after.Namespace, Apps: slices.Concat(was, now)}
	who := after.Spec.UserName
	switch {
	case after.Status.Phase == identityv1alpha1.UserPhaseActive && isReady(after.Status.Conditions) && len(now) > 0 && len(lastReady) == 0:
		e.Kind, e.Title = identityv1alpha1.NotifyJoiner, fmt.Sprintf("%s has every account ready: %s", who, strings.Join(now, ", "))
		e.Lines = []string{fmt.Sprintf("%d accounts: %s", len(now), strings.Join(now, ", "))}
	case after.Status.Phase == identityv1alpha1.UserPhaseActive && isReady(after.Status.Conditions):
		gained, lost := difference(now, lastReady), difference(lastReady, now)
		if len(gained)+len(lost) == 0 {
			return e, false
		}
		e.Kind, e.Title = identityv1alpha1.NotifyMover, fmt.Sprintf("%s's access changed and is in place", who)
		if len(gained) > 0 {
			e.Lines = append(e.Lines, "gained: "+strings.Join(gained, ", "))
		}
		if len(lost) > 0 {
			e.Lines = append(e.Lines, "lost: "+strings.Join(lost, ", "))
		}
	case after.Status.Phase != identityv1alpha1.UserPhaseActive && after.Status.Phase != identityv1alpha1.UserPhasePending && len(was) > 0 && len(now) == 0:
		e.Kind, e.Title = identityv1alpha1.NotifyLeaver, fmt.Sprintf("%s (%s) has every account off", who, strings.ToLower(string(after.Status.Phase)))
		for _, app := range was {
			line := app + ": off"
			if at, ok := offAt[app]; ok && !leftAt.IsZero() {
				line = fmt.Sprintf("%s: off %s after leaving", app, at.Sub(leftAt).Round(10*time.Millisecond))
			}
			e.Lines = append(e.Lines, line)
		}
	default:
		return e, false
	}
	e.Key = fmt.Sprintf("%s/%s/%s/%s", e.Kind, after.UID, strings.Join(lastReady, ","), strings.Join(now, ","))
	return e, true
}

// difference lists what a holds that b does not.
func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// failingReasons are the Ready reasons of an app that cannot be provisioned.
var failingReasons = map[string]bool{
	identityv1alpha1.ReasonConnectorError: true, identityv1alpha1.ReasonCredentialsRejected: true,
	identityv1alpha1.ReasonSecretNotFound: true, identityv1alpha1.ReasonInvalidSpec: true,
}

// appNews says whether an AppConnection just began failing, recovered, had a plan held
// by the safety threshold, or found unmanaged accounts.
func appNews(before, after *identityv1alpha1.AppConnection) []notify.Event {
	ns, name := after.Namespace, after.Name
	base := func(kind identityv1alpha1.NotificationEvent, key, title string) notify.Event {
		return notify.Event{Kind: kind, Namespace: ns, Apps: []string{name}, Key: fmt.Sprintf("%s/%s/%s", kind, after.UID, key), Title: title}
	}
	var out []notify.Event
	was := meta.FindStatusCondition(before.Status.Conditions, identityv1alpha1.ConditionReady)
	now := meta.FindStatusCondition(after.Status.Conditions, identityv1alpha1.ConditionReady)
	wasFailing := was != nil && was.Status != metav1.ConditionTrue && failingReasons[was.Reason]
	nowFailing := now != nil && now.Status != metav1.ConditionTrue && failingReasons[now.Reason]
	switch {
	case nowFailing && (!wasFailing || was.Reason != now.Reason):
		e := base(identityv1alpha1.NotifyAppFailing, now.Reason+"/"+now.LastTransitionTime.UTC().Format(time.RFC3339), fmt.Sprintf("%s is failing: %s", name, now.Reason))
		e.Lines = []string{now.Message}
		out = append(out, e)
	case wasFailing && now != nil && now.Status == metav1.ConditionTrue:
		out = append(out, base(identityv1alpha1.NotifyAppRecovered, now.LastTransitionTime.UTC().Format(time.RFC3339), fmt.Sprintf("%s recovered: %s", name, now.Message)))
	}
	if q := after.Status.QuarantinedUntil; q != nil && before.Status.QuarantinedUntil == nil {
		e := base(identityv1alpha1.NotifyAppFailing, "quarantine/"+q.UTC().Format(time.RFC3339),
			fmt.Sprintf("%s is quarantined until %s: it kept failing, and Roster backs off", name, q.UTC().Format(time.RFC3339)))
		out = append(out, e)
	}
	if p := after.Status.Plan; held(after.Status.Conditions) && p != nil && (!held(before.Status.Conditions) || before.Status.Plan == nil || before.Status.Plan.ID != p.ID) {
		e := base(identityv1alpha1.NotifyPlanHeld, p.ID, fmt.Sprintf("%s: the safety threshold holds a plan", name))
		if c := meta.FindStatusCondition(after.Status.Conditions, identityv1alpha1.ConditionStalled); c != nil {
			e.Lines = []string{c.Message}
		}
		e.Command = fmt.Sprintf(identityv1alpha1.ApproveCommand, "appconnection -n "+ns, name, p.ID)
		out = append(out, e)
	}
	if n := after.Status.Accounts.Unmanaged; n > before.Status.Accounts.Unmanaged && n > 0 {
		e := base(identityv1alpha1.NotifyUnmanagedAccounts, fmt.Sprint(n), fmt.Sprintf("%s has %d accounts no User holds", name, n))
		if len(after.Status.UnmanagedAccounts) > 0 {
			e.Lines = []string{"among them: " + strings.Join(after.Status.UnmanagedAccounts[:min(10, len(after.Status.UnmanagedAccounts))], ", ")}
		}
		out = append(out, e)
	}
	return out
}

func held(conds []metav1.Condition) bool {
	c := meta.FindStatusCondition(conds, identityv1alpha1.ConditionStalled)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == identityv1alpha1.ReasonSafetyThresholdExceeded
}

// syncNews says whether a DirectorySync's plan was just held by the safety threshold.
func syncNews(before, after *identityv1alpha1.DirectorySync) (notify.Event, bool) {
	c := meta.FindStatusCondition(after.Status.Conditions, identityv1alpha1.ConditionStalled)
	if !held(after.Status.Conditions) || held(before.Status.Conditions) {
		return notify.Event{}, false
	}
	return notify.Event{Kind: identityv1alpha1.NotifyPlanHeld, Namespace: after.Namespace,
		Key:   fmt.Sprintf("%s/%s/%s", identityv1alpha1.NotifyPlanHeld, after.UID, c.LastTransitionTime.UTC().Format(time.RFC3339)),
		Title: fmt.Sprintf("the directory sync %s: the safety threshold holds a plan", after.Name), Lines: []string{c.Message}}, true
}

// phaseNews is the event an AccessRequest's phase is told as.
var phaseNews = map[identityv1alpha1.AccessRequestPhase]identityv1alpha1.NotificationEvent{
	identityv1alpha1.AccessRequestPending: identityv1alpha1.NotifyAccessRequested, identityv1alpha1.AccessRequestApproved: identityv1alpha1.NotifyAccessApproved,
	identityv1alpha1.AccessRequestDenied: identityv1alpha1.NotifyAccessDenied, identityv1alpha1.AccessRequestExpired: identityv1alpha1.NotifyAccessExpired,
	identityv1alpha1.AccessRequestRevoked: identityv1alpha1.NotifyAccessRevoked, identityv1alpha1.AccessRequestWithdrawn: identityv1alpha1.NotifyAccessRevoked,
}

// requestNews tells of an AccessRequest's new phase.
func requestNews(ar *identityv1alpha1.AccessRequest, user *identityv1alpha1.User, m *Membership, approverEmails []string) (notify.Event, bool) {
	kind, ok := phaseNews[ar.Status.Phase]
	if !ok {
		return notify.Event{}, false
	}
	what, who := requested(ar), forWhom(ar, user)
	e := notify.Event{Kind: kind, Namespace: ar.Namespace, Key: fmt.Sprintf("%s/%s", kind, ar.UID), Apps: []string{ar.Spec.App},
		Person: person(user, m), Facts: []notify.Fact{{Name: "For", Value: who}, {Name: "Access", Value: what},
			{Name: "Duration", Value: ar.Spec.Duration.Duration.String()}, {Name: "Requested by", Value: ar.Spec.Requester}},
		Lines: []string{"Why: " + ar.Spec.Justification}}
	if ar.Spec.RoleRef != nil {
		e.Apps = nil
	}
	switch kind {
	case identityv1alpha1.NotifyAccessRequested:
		e.Title = fmt.Sprintf("%s asks for %s for %s, %s", ar.Spec.Requester, what, who, ar.Spec.Duration.Duration)
		e.Lines = append(e.Lines, "Approvers: "+strings.Join(ar.Status.Approvers, ", "),
			"Deny with: "+fmt.Sprintf(identityv1alpha1.DecideCommand, ar.Namespace, ar.Name, identityv1alpha1.DecisionDeny))
		e.Command = fmt.Sprintf(identityv1alpha1.DecideCommand, ar.Namespace, ar.Name, identityv1alpha1.DecisionApprove)
		e.Concerned = approverEmails
	default:
		e.Title = fmt.Sprintf("%s for %s: %s", what, who, strings.ToLower(string(ar.Status.Phase)))
		if ar.Status.Phase == identityv1alpha1.AccessRequestApproved {
			e.Title += " by " + strings.Join(approvedWith(ar), ", ")
		} else if c := meta.FindStatusCondition(ar.Status.Conditions, identityv1alpha1.ConditionReady); c != nil {
			e.Lines = append(e.Lines, c.Message)
		}
		e.Concerned = concerned(ar, user)
	}
	if t := ar.Status.ExpiryTime; t != nil {
		e.Facts = append(e.Facts, notify.Fact{Name: "Expires", Value: t.UTC().Format(time.RFC3339)})
	}
	return e, true
}

// expiringNews warns that granted access ends within a day.
func expiringNews(ar *identityv1alpha1.AccessRequest, user *identityv1alpha1.User, m *Membership) notify.Event {
	e, _ := requestNews(ar, user, m, nil)
	e.Kind, e.Key = identityv1alpha1.NotifyAccessExpiring, fmt.Sprintf("%s/%s", identityv1alpha1.NotifyAccessExpiring, ar.UID)
	e.Title = fmt.Sprintf("%s for %s ends at %s", requested(ar), forWhom(ar, user), ar.Status.ExpiryTime.UTC().Format(time.RFC3339))
	return e
}

// forWhom names the person a request is for: their userName, or the User's name.
func forWhom(ar *identityv1alpha1.AccessRequest, user *identityv1alpha1.User) string {
	if user != nil && user.Spec.UserName != "" {
		return user.Spec.UserName
	}
	return ar.Spec.UserRef.Name
}

// requested says what a request asks for.
func requested(ar *identityv1alpha1.AccessRequest) string {
	if ar.Spec.RoleRef != nil {
		return "the Role " + ar.Spec.RoleRef.Name
	}
	what := ar.Spec.App
	if len(ar.Spec.Groups) > 0 {
		what += " (groups " + strings.Join(ar.Spec.Groups, ", ") + ")"
	}
	return what
}

// concerned are the requester, when their user name is an address, and the person.
func concerned(ar *identityv1alpha1.AccessRequest, user *identityv1alpha1.User) []string {
	var out []string
	if a, err := mail.ParseAddress(ar.Spec.Requester); err == nil && a.Name == "" {
		out = append(out, a.Address)
	}
	if user != nil {
		if e := emailOf(user); e != "" && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}
