package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/mapping"
	"github.com/rosterhq/roster/controllers/notify"
)

// DefaultAccessRequestRetention is how long an ended AccessRequest is kept, for audit,
// unless the operator is told otherwise.
const DefaultAccessRequestRetention = 90 * 24 * time.Hour

const labelAccessRequest = "identity.roster.dev/access-request"

// Roster's own entries in a request's decisions. Kubernetes reserves the system: prefix
// for its own identities, so no person's decision can pass for one of these.
const (
	PolicyDecidedBy = "system:roster:requestable"
	AutoApprovedBy  = "system:roster:requestable.autoApprove"
)

// notCounted starts the comment of a decision Roster recorded but did not act on.
const notCounted = "not counted: "

// AccessRequestReconciler takes each AccessRequest through its life: checks it against
// the requestable policy, lets its approvers (and only them) decide, grants the access
// with time-bound AppAssignments it owns, and ends it on expiry, revocation or
// withdrawal.
type AccessRequestReconciler struct {
	client.Client
	// APIReader reads the approvers' Roles and RoleBindings, which are not cached.
	APIReader  client.Reader
	Membership *Membership
	Recorder   recorder.EventRecorder
	// Notify tells Notifiers of requests to decide and of decisions.
	Notify *notify.Hub
	// IdentityPrefix is what the API server puts before a person's userName in their
	// Kubernetes user name.
	IdentityPrefix string
	// Retention is how long an ended request is kept; 0 means the default.
	Retention time.Duration

	rules *mapping.Env
}

func (r *AccessRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ar := &identityv1alpha1.AccessRequest{}
	if err := r.Get(ctx, req.NamespacedName, ar); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := time.Now()
	if ended(ar.Status.Phase) {
		return r.retain(ctx, ar, now)
	}
	before := ar.DeepCopy()
	cond := newConditions(&ar.Status.CommonStatus, ar.Generation)
	ar.Status.ObservedGeneration = ar.Generation
	if ar.Status.Phase == "" {
		ar.Status.Phase = identityv1alpha1.AccessRequestPending
	}
	next, err := r.step(ctx, ar, cond, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	// A stale copy must not record a decision twice: the write fails and is retried.
	if !equality.Semantic.DeepEqual(ar.Status, before.Status) {
		if err := r.Status().Patch(ctx, ar, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.announce(ctx, ar, before.Status.Phase)
	if next.IsZero() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: max(next.Sub(now), time.Millisecond)}, nil
}

// step moves a live request on and returns when it must be looked at again.
func (r *AccessRequestReconciler) step(ctx context.Context, ar *identityv1alpha1.AccessRequest, cond conditions, now time.Time) (time.Time, error) {
	user := &identityv1alpha1.User{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ar.Namespace, Name: ar.Spec.UserRef.Name}, user); err != nil {
		if !apierrors.IsNotFound(err) {
			return time.Time{}, err
		}
		if ar.Status.ApprovedTime == nil {
			cond.notReady(identityv1alpha1.ReasonSubjectNotFound, fmt.Sprintf("the User %s does not exist; the request waits for them", ar.Spec.UserRef.Name))
			return time.Time{}, nil
		}
		user = nil
	}
	if user != nil {
		ar.Status.UserName = r.identity(user)
	}
	r.record(ar, now)
	terms, err := r.terms(ctx, ar)
	if err != nil {
		return time.Time{}, err
	}
	if ar.Status.ApprovedTime == nil && !ended(ar.Status.Phase) {
		if err := r.weigh(ctx, ar, user, terms, cond, now); err != nil {
			return time.Time{}, err
		}
		if ar.Status.ApprovedTime == nil && !ended(ar.Status.Phase) {
			return time.Time{}, nil
		}
	}
	if ended(ar.Status.Phase) {
		return time.Time{}, r.end(ctx, ar, ar.Status.Phase, cond, now)
	}
	return r.grant(ctx, ar, terms, cond, now)
}

// record takes the decisions added since the last look into status, with the time, and
// acts on denials, revocations and withdrawals.
func (r *AccessRequestReconciler) record(ar *identityv1alpha1.AccessRequest, now time.Time) {
	seen := 0
	for _, d := range ar.Status.Decisions {
		if !strings.HasPrefix(d.By, "system:roster:") {
			seen++
		}
	}
	for _, d := range ar.Spec.Decisions[min(seen, len(ar.Spec.Decisions)):] {
		rec := identityv1alpha1.RecordedDecision{By: d.By, Decision: d.Decision, Time: metav1.NewTime(now), Comment: d.Comment}
		switch {
		case strings.HasPrefix(d.By, "system:roster:"):
			rec.By, rec.Comment = "not-a-person:"+d.By, notCounted+"system:roster: names Roster's own entries"
		case ended(ar.Status.Phase):
			rec.Comment = notCounted + "the request had ended"
		case d.Decision == identityv1alpha1.DecisionApprove && (d.By == ar.Spec.Requester || d.By == ar.Status.UserName):
			rec.Comment = notCounted + "nobody approves a request they made or one for themselves"
		case d.Decision == identityv1alpha1.DecisionWithdraw && d.By != ar.Spec.Requester:
			rec.Comment = notCounted + "only the requester withdraws a request"
		case d.Decision == identityv1alpha1.DecisionWithdraw:
			ar.Status.Phase = identityv1alpha1.AccessRequestWithdrawn
		case d.Decision == identityv1alpha1.DecisionDeny || d.Decision == identityv1alpha1.DecisionRevoke:
			ar.Status.Phase = identityv1alpha1.AccessRequestDenied
			if ar.Status.ApprovedTime != nil {
				ar.Status.Phase = identityv1alpha1.AccessRequestRevoked
			}
		}
		ar.Status.Decisions = append(ar.Status.Decisions, rec)
	}
}

// weigh decides a pending request: refused by the policy, approved by enough
// approvers or by the policy's rule, or still waiting, its approvers granted the right
// to decide.
func (r *AccessRequestReconciler) weigh(ctx context.Context, ar *identityv1alpha1.AccessRequest, user *identityv1alpha1.User, terms requestTerms, cond conditions, now time.Time) error {
	if terms.refusal != "" {
		ar.Status.Decisions = append(ar.Status.Decisions, identityv1alpha1.RecordedDecision{
			By: PolicyDecidedBy, Decision: identityv1alpha1.DecisionDeny, Time: metav1.NewTime(now), Comment: truncate(terms.refusal, 1024)})
		ar.Status.Phase = identityv1alpha1.AccessRequestDenied
		return nil
	}
	approvals := approvedBy(ar)
	needed := int(max(terms.policy.Approvals, 1))
	ar.Status.Approvals = fmt.Sprintf("%d/%d", min(len(approvals), needed), needed)
	if len(approvals) >= needed {
		ar.Status.ApprovedTime = statusTime(now)
		return nil
	}
	auto, ruleErr := autoApproves(r.rules, terms.policy, ar, user)
	if auto {
		ar.Status.Decisions = append(ar.Status.Decisions, identityv1alpha1.RecordedDecision{
			By: AutoApprovedBy, Decision: identityv1alpha1.DecisionApprove, Time: metav1.NewTime(now)})
		ar.Status.ApprovedTime, ar.Status.Approvals = statusTime(now), "auto"
		return nil
	}
	approvers, err := r.approvers(ctx, ar, user, terms.policy)
	if err != nil {
		return err
	}
	ar.Status.Approvers = approvers[:min(len(approvers), 64)]
	if err := r.grantApprovers(ctx, ar, approvers); err != nil {
		return err
	}
	msg := fmt.Sprintf("waiting for %d more approval(s) from %s; approve with: %s", needed-len(approvals),
		strings.Join(ar.Status.Approvers, ", "), fmt.Sprintf(identityv1alpha1.DecideCommand, ar.Namespace, ar.Name, identityv1alpha1.DecisionApprove))
	if len(approvers) == 0 {
		msg = "nobody can approve: the policy names no approver who exists and is neither the requester nor the person the access is for"
	}
	if ruleErr != nil {
		msg += "; " + ruleErr.Error()
	}
	cond.stalled(identityv1alpha1.ReasonAwaitingApproval, msg)
	return nil
}

// approvedBy lists the people whose approvals count.
func approvedBy(ar *identityv1alpha1.AccessRequest) []string {
	var out []string
	for _, d := range ar.Status.Decisions {
		if d.Decision == identityv1alpha1.DecisionApprove && !strings.HasPrefix(d.Comment, notCounted) && !strings.HasPrefix(d.By, "system:roster:") {
			out = append(out, d.By)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// grant keeps an approved request's AppAssignments in place until its expiry, and ends
// it then.
func (r *AccessRequestReconciler) grant(ctx context.Context, ar *identityv1alpha1.AccessRequest, terms requestTerms, cond conditions, now time.Time) (time.Time, error) {
	expiry := ar.Status.ApprovedTime.Add(ar.Spec.Duration.Duration)
	ar.Status.ExpiryTime = statusTime(expiry)
	if !now.Before(expiry) {
		return time.Time{}, r.end(ctx, ar, identityv1alpha1.AccessRequestExpired, cond, expiry)
	}
	if ar.Status.Phase == identityv1alpha1.AccessRequestPending {
		ar.Status.Phase = identityv1alpha1.AccessRequestApproved
	}
	if terms.refusal != "" && len(ar.Status.Assignments) == 0 {
		cond.stalled(identityv1alpha1.ReasonInvalidSpec, "approved, but "+terms.refusal)
		return expiry, nil
	}
	taken, err := r.assign(ctx, ar, terms.grants)
	if err != nil {
		return time.Time{}, err
	}
	if taken != "" {
		cond.stalled(identityv1alpha1.ReasonInvalidSpec, taken)
		return expiry, nil
	}
	done, progress, err := r.provisioned(ctx, ar)
	if err != nil {
		return time.Time{}, err
	}
	next := expiry
	if warnAt := expiry.Add(-24 * time.Hour); ar.Spec.Duration.Duration > 24*time.Hour {
		if now.Before(warnAt) {
			next = warnAt
		} else {
			r.Notify.Publish(expiringNews(ar, r.userOf(ctx, ar), r.Membership))
		}
	}
	until := "until " + expiry.UTC().Format(time.RFC3339)
	if done {
		ar.Status.Phase = identityv1alpha1.AccessRequestActive
		cond.ready(string(identityv1alpha1.AccessRequestActive), "access granted "+until)
	} else {
		cond.progressing(identityv1alpha1.ReasonGranting, progress+"; access "+until)
	}
	return next, nil
}

// assign creates the request's AppAssignments, valid from approval to expiry. It says
// which name is already taken by an object the request does not own.
func (r *AccessRequestReconciler) assign(ctx context.Context, ar *identityv1alpha1.AccessRequest, grants []identityv1alpha1.RoleGrant) (string, error) {
	var names []string
	for _, g := range grants {
		name := assignmentName(ar.Name, g.App)
		names = append(names, name)
		a := &identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: ar.Namespace, Name: name,
			Labels: map[string]string{labelAccessRequest: ar.Name}},
			Spec: identityv1alpha1.AppAssignmentSpec{UserRef: ar.Spec.UserRef.DeepCopy(), App: g.App, Entitlements: *g.Entitlements.DeepCopy(),
				ValidFrom: ar.Status.ApprovedTime, ValidUntil: ar.Status.ExpiryTime}}
		live := &identityv1alpha1.AppAssignment{}
		err := r.Get(ctx, client.ObjectKeyFromObject(a), live)
		switch {
		case apierrors.IsNotFound(err):
			if err := ctrl.SetControllerReference(ar, a, r.Scheme()); err != nil {
				return "", err
			}
			if err := r.Create(ctx, a); err != nil && !apierrors.IsAlreadyExists(err) {
				return "", err
			}
		case err != nil:
			return "", err
		case !metav1.IsControlledBy(live, ar):
			return fmt.Sprintf("the AppAssignment %s exists and is not this request's; delete it or make a new request", name), nil
		}
	}
	ar.Status.Assignments = names
	return "", nil
}

// assignmentName names a request's AppAssignment for one app: request.app, apart from
// the request-app names a Role gives the AppAssignments of its grants.
func assignmentName(request, app string) string { return boundedName(request + "." + app) }

// provisioned reports whether every account the request's AppAssignments grant is in
// place, and if not, what the assignments say.
func (r *AccessRequestReconciler) provisioned(ctx context.Context, ar *identityv1alpha1.AccessRequest) (bool, string, error) {
	var waiting []string
	for _, name := range ar.Status.Assignments {
		a := &identityv1alpha1.AppAssignment{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: ar.Namespace, Name: name}, a); err != nil {
			if apierrors.IsNotFound(err) {
				waiting = append(waiting, name+": being created")
				continue
			}
			return false, "", err
		}
		ready := meta.FindStatusCondition(a.Status.Conditions, identityv1alpha1.ConditionReady)
		switch {
		case a.Status.Desired > 0 && a.Status.Provisioned == a.Status.Desired:
		case ready != nil && ready.ObservedGeneration == a.Generation:
			waiting = append(waiting, a.Spec.App+": "+ready.Message)
		default:
			waiting = append(waiting, a.Spec.App+": being provisioned")
		}
	}
	return len(waiting) == 0, strings.Join(waiting, "; "), nil
}

// end ends a request: its access removed (through the AppAssignments' deletion, so the
// apps deprovision per their policy, under their safety threshold), its approvers'
// rights taken back, and the time recorded for the retention period.
func (r *AccessRequestReconciler) end(ctx context.Context, ar *identityv1alpha1.AccessRequest, phase identityv1alpha1.AccessRequestPhase, cond conditions, at time.Time) error {
	if err := r.DeleteAllOf(ctx, &identityv1alpha1.AppAssignment{}, client.InNamespace(ar.Namespace),
		client.MatchingLabels{labelAccessRequest: ar.Name}); err != nil {
		return err
	}
	if err := r.revokeApprovers(ctx, ar); err != nil {
		return err
	}
	ar.Status.Phase = phase
	ar.Status.EndTime = statusTime(at)
	cond.ready(string(phase), endMessage(ar))
	return nil
}

func endMessage(ar *identityv1alpha1.AccessRequest) string {
	last := func() identityv1alpha1.RecordedDecision {
		for i := len(ar.Status.Decisions) - 1; i >= 0; i-- {
			if d := ar.Status.Decisions[i]; !strings.HasPrefix(d.Comment, notCounted) {
				return d
			}
		}
		return identityv1alpha1.RecordedDecision{}
	}()
	switch ar.Status.Phase {
	case identityv1alpha1.AccessRequestExpired:
		return "the access ended at " + ar.Status.EndTime.UTC().Format(time.RFC3339)
	case identityv1alpha1.AccessRequestDenied:
		if last.By == PolicyDecidedBy {
			return "refused: " + last.Comment
		}
		return "denied by " + last.By + withComment(last.Comment)
	case identityv1alpha1.AccessRequestRevoked:
		return "revoked by " + last.By + withComment(last.Comment) + "; the access was removed"
	}
	return "withdrawn by " + last.By + withComment(last.Comment)
}

func withComment(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}

// retain deletes an ended request once the retention period has passed.
func (r *AccessRequestReconciler) retain(ctx context.Context, ar *identityv1alpha1.AccessRequest, now time.Time) (ctrl.Result, error) {
	if ar.Status.EndTime == nil {
		return ctrl.Result{}, nil
	}
	retention := r.Retention
	if retention <= 0 {
		retention = DefaultAccessRequestRetention
	}
	if until := ar.Status.EndTime.Add(retention); now.Before(until) {
		return ctrl.Result{RequeueAfter: until.Sub(now)}, nil
	}
	return ctrl.Result{}, client.IgnoreNotFound(r.Delete(ctx, ar))
}

func ended(p identityv1alpha1.AccessRequestPhase) bool {
	switch p {
	case identityv1alpha1.AccessRequestDenied, identityv1alpha1.AccessRequestExpired,
		identityv1alpha1.AccessRequestRevoked, identityv1alpha1.AccessRequestWithdrawn:
		return true
	}
	return false
}

// announce records an Event when a request changes phase, and tells Notifiers.
func (r *AccessRequestReconciler) announce(ctx context.Context, ar *identityv1alpha1.AccessRequest, was identityv1alpha1.AccessRequestPhase) {
	if ar.Status.Phase == was {
		return
	}
	user := r.userOf(ctx, ar)
	if e, ok := requestNews(ar, user, r.Membership, r.emailsOf(ctx, ar.Namespace, ar.Status.Approvers)); ok {
		r.Notify.Publish(e)
	}
	what := ar.Spec.App
	if ar.Spec.RoleRef != nil {
		what = "the Role " + ar.Spec.RoleRef.Name
	}
	msg := fmt.Sprintf("%s for %s, %s", what, ar.Spec.UserRef.Name, ar.Spec.Duration.Duration)
	typ := corev1.EventTypeNormal
	switch ar.Status.Phase {
	case identityv1alpha1.AccessRequestPending:
		msg = fmt.Sprintf("%s asks for %s: %s", ar.Spec.Requester, msg, ar.Spec.Justification)
	case identityv1alpha1.AccessRequestApproved:
		msg = fmt.Sprintf("%s approved by %s", msg, strings.Join(approvedWith(ar), ", "))
	case identityv1alpha1.AccessRequestActive:
		msg = fmt.Sprintf("%s granted until %s", msg, ar.Status.ExpiryTime.UTC().Format(time.RFC3339))
	default:
		msg = fmt.Sprintf("%s: %s", msg, endMessage(ar))
		typ = corev1.EventTypeWarning
		if ar.Status.Phase == identityv1alpha1.AccessRequestExpired || ar.Status.Phase == identityv1alpha1.AccessRequestWithdrawn {
			typ = corev1.EventTypeNormal
		}
	}
	r.Recorder.Eventf(ar, nil, typ, "Access"+string(ar.Status.Phase), "Decide", "%s", truncate(msg, 1024))
}

// approvedWith names who approved, people or the policy's rule.
func approvedWith(ar *identityv1alpha1.AccessRequest) []string {
	out := approvedBy(ar)
	for _, d := range ar.Status.Decisions {
		if d.By == AutoApprovedBy {
			out = append(out, AutoApprovedBy)
		}
	}
	return out
}

// SetupWithManager watches AccessRequests, the AppAssignments they own and the Users
// they are for.
func (r *AccessRequestReconciler) SetupWithManager(mgr ctrl.Manager) error {
	env, err := mapping.NewEnv("user", "request")
	if err != nil {
		return err
	}
	r.rules = env
	leader := true // even where the other controllers run on every replica (automatic shards)
	return ctrl.NewControllerManagedBy(mgr).
		WithOptions(controller.Options{NeedLeaderElection: &leader}).
		For(&identityv1alpha1.AccessRequest{}).
		Owns(&identityv1alpha1.AppAssignment{}).
		Watches(&identityv1alpha1.User{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
			var list identityv1alpha1.AccessRequestList
			if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{indexRequestUser: obj.GetName()}); err != nil {
				return nil
			}
			var reqs []reconcile.Request
			for _, ar := range list.Items {
				if !ended(ar.Status.Phase) {
					reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ar)})
				}
			}
			return reqs
		})).
		Complete(r)
}

// userOf is the User a request is for, or nil.
func (r *AccessRequestReconciler) userOf(ctx context.Context, ar *identityv1alpha1.AccessRequest) *identityv1alpha1.User {
	u := &identityv1alpha1.User{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ar.Namespace, Name: ar.Spec.UserRef.Name}, u); err != nil {
		return nil
	}
	return u
}

// emailsOf are the addresses of the Users with these Kubernetes identities.
func (r *AccessRequestReconciler) emailsOf(ctx context.Context, namespace string, identities []string) []string {
	var out []string
	for _, id := range identities {
		userName, ok := strings.CutPrefix(id, r.IdentityPrefix)
		if !ok {
			continue
		}
		var users identityv1alpha1.UserList
		if err := r.List(ctx, &users, client.InNamespace(namespace), client.MatchingFields{indexUserName: strings.ToLower(userName)}); err != nil {
			continue
		}
		for i := range users.Items {
			if e := emailOf(&users.Items[i]); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}
