package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/mapping"
)

// requestTerms is what a request may get: the policy that governs it and the grants it
// becomes once approved, or why it cannot be granted at all.
type requestTerms struct {
	policy  *identityv1alpha1.RequestPolicy
	grants  []identityv1alpha1.RoleGrant
	refusal string // set when the policy refuses the request
}

// terms reads the AppConnection's or Role's requestable policy and checks the request
// against it.
func (r *AccessRequestReconciler) terms(ctx context.Context, req *identityv1alpha1.AccessRequest) (requestTerms, error) {
	key := types.NamespacedName{Namespace: req.Namespace}
	var t requestTerms
	if req.Spec.RoleRef != nil {
		key.Name = req.Spec.RoleRef.Name
		role := &identityv1alpha1.Role{}
		if err := r.Get(ctx, key, role); err != nil {
			if apierrors.IsNotFound(err) {
				return requestTerms{refusal: fmt.Sprintf("the Role %s does not exist", key.Name)}, nil
			}
			return t, err
		}
		switch {
		case role.Spec.Requestable == nil:
			t.refusal = fmt.Sprintf("the Role %s cannot be requested: it has no requestable policy", key.Name)
		case len(role.Spec.Grants) == 0:
			t.refusal = fmt.Sprintf("the Role %s grants no apps", key.Name)
		}
		t.policy, t.grants = role.Spec.Requestable, role.Spec.Grants
		return t.withDuration(req), nil
	}
	key.Name = req.Spec.App
	conn := &identityv1alpha1.AppConnection{}
	if err := r.Get(ctx, key, conn); err != nil {
		if apierrors.IsNotFound(err) {
			return requestTerms{refusal: fmt.Sprintf("the AppConnection %s does not exist", key.Name)}, nil
		}
		return t, err
	}
	p := conn.Spec.Requestable
	if p == nil {
		t.refusal = fmt.Sprintf("%s cannot be requested: its AppConnection has no requestable policy", key.Name)
		return t, nil
	}
	t.policy = &p.RequestPolicy
	t.grants = []identityv1alpha1.RoleGrant{{App: req.Spec.App, Entitlements: req.Spec.Entitlements}}
	t.refusal = notOffered(req.Spec.Entitlements, p)
	return t.withDuration(req), nil
}

// withDuration refuses a request longer than the policy allows.
func (t requestTerms) withDuration(req *identityv1alpha1.AccessRequest) requestTerms {
	if t.refusal != "" || t.policy == nil {
		return t
	}
	if longest := maxDuration(t.policy); req.Spec.Duration.Duration > longest {
		t.refusal = fmt.Sprintf("%s is longer than the %s the policy allows", req.Spec.Duration.Duration, longest)
	}
	return t
}

func maxDuration(p *identityv1alpha1.RequestPolicy) time.Duration {
	if p.MaxDuration == nil {
		return 168 * time.Hour
	}
	return p.MaxDuration.Duration
}

// notOffered says which requested entitlements the app's policy does not offer.
func notOffered(e identityv1alpha1.Entitlements, p *identityv1alpha1.AppRequestPolicy) string {
	var out []string
	for _, g := range e.Groups {
		if !slices.ContainsFunc(p.Groups, func(o string) bool { return strings.EqualFold(o, g) }) {
			out = append(out, "group "+g)
		}
	}
	if e.AppRole != "" && !slices.Contains(p.AppRoles, e.AppRole) {
		out = append(out, "app role "+e.AppRole)
	}
	if e.License != "" && !slices.Contains(p.Licenses, e.License) {
		out = append(out, "license "+e.License)
	}
	if len(out) == 0 {
		return ""
	}
	return "the policy does not offer " + strings.Join(out, ", ")
}

// approvers lists the Kubernetes identities the policy lets approve: the manager of the
// User the access is for, named Users and Roles' members, each by userName, less the
// requester and that User. Users who do not exist are left out.
func (r *AccessRequestReconciler) approvers(ctx context.Context, req *identityv1alpha1.AccessRequest, user *identityv1alpha1.User, p *identityv1alpha1.RequestPolicy) ([]string, error) {
	names := slices.Clone(p.Approvers.Users)
	if p.Approvers.Manager != identityv1alpha1.ManagerNone && user.Spec.Manager != nil {
		names = append(names, user.Spec.Manager.Name)
	}
	for _, role := range p.Approvers.Roles {
		names = append(names, r.Membership.Members(req.Namespace, role)...)
	}
	slices.Sort(names)
	var out []string
	for _, name := range slices.Compact(names) {
		u := &identityv1alpha1.User{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: name}, u); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		id := r.identity(u)
		if id != req.Spec.Requester && id != r.identity(user) && u.Spec.State != identityv1alpha1.UserStateSuspended {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// identity is the Kubernetes user name the API server gives a person: their userName,
// with the operator's prefix.
func (r *AccessRequestReconciler) identity(u *identityv1alpha1.User) string {
	return r.IdentityPrefix + u.Spec.UserName
}

// autoApproves evaluates the policy's autoApprove rule; a rule that does not compile or
// fails approves nothing, and says why.
func autoApproves(env *mapping.Env, p *identityv1alpha1.RequestPolicy, req *identityv1alpha1.AccessRequest, user *identityv1alpha1.User) (bool, error) {
	if p.AutoApprove == "" {
		return false, nil
	}
	prg, err := env.Compile(p.AutoApprove)
	if err != nil {
		return false, fmt.Errorf("requestable.autoApprove does not compile: %w", err)
	}
	role := ""
	if req.Spec.RoleRef != nil {
		role = req.Spec.RoleRef.Name
	}
	request := mapping.EntitlementVars(req.Spec.Groups, req.Spec.AppRole, req.Spec.License)
	request["app"], request["role"], request["duration"] = req.Spec.App, role, req.Spec.Duration.Duration
	request["requester"], request["justification"] = req.Spec.Requester, req.Spec.Justification
	ok, err := prg.EvalBool(map[string]any{"user": mapping.UserVars(user), "request": request})
	if err != nil {
		return false, fmt.Errorf("requestable.autoApprove failed: %w", err)
	}
	return ok, nil
}
