package controllers

import (
	"context"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Approvers are given the right to decide on one request, and no other, by a Role and a
// RoleBinding the request owns: the approve verb on accessrequests/approval (which the
// access-requests admission policy checks) and get and patch on the request (to add a
// decision), both limited to the request by name.

// approverRBACName names a request's Role and RoleBinding.
func approverRBACName(request string) string { return boundedName("roster-access-request-" + request) }

// grantApprovers writes the Role and RoleBinding that let the approvers decide on req.
func (r *AccessRequestReconciler) grantApprovers(ctx context.Context, req *identityv1alpha1.AccessRequest, approvers []string) error {
	if len(approvers) == 0 {
		return r.revokeApprovers(ctx, req)
	}
	meta := metav1.ObjectMeta{Namespace: req.Namespace, Name: approverRBACName(req.Name),
		Labels: map[string]string{labelAccessRequest: req.Name}}
	role := &rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{identityv1alpha1.GroupVersion.Group}, Resources: []string{"accessrequests/approval"}, Verbs: []string{"approve"}, ResourceNames: []string{req.Name}},
		{APIGroups: []string{identityv1alpha1.GroupVersion.Group}, Resources: []string{"accessrequests"}, Verbs: []string{"get", "patch"}, ResourceNames: []string{req.Name}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: *meta.DeepCopy(),
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: meta.Name}}
	for _, a := range approvers {
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: a})
	}
	if err := r.apply(ctx, req, role, func(live client.Object) bool {
		changed := !equality.Semantic.DeepEqual(live.(*rbacv1.Role).Rules, role.Rules)
		live.(*rbacv1.Role).Rules = role.Rules
		return changed
	}); err != nil {
		return err
	}
	return r.apply(ctx, req, binding, func(live client.Object) bool {
		changed := !equality.Semantic.DeepEqual(live.(*rbacv1.RoleBinding).Subjects, binding.Subjects)
		live.(*rbacv1.RoleBinding).Subjects = binding.Subjects
		return changed
	})
}

// apply creates obj owned by req, or brings the live object in line with update.
func (r *AccessRequestReconciler) apply(ctx context.Context, req *identityv1alpha1.AccessRequest, obj client.Object, update func(live client.Object) bool) error {
	if err := controllerutil.SetControllerReference(req, obj, r.Scheme()); err != nil {
		return err
	}
	live := obj.DeepCopyObject().(client.Object)
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), live)
	switch {
	case apierrors.IsNotFound(err):
		return r.Create(ctx, obj)
	case err != nil:
		return err
	case !metav1.IsControlledBy(live, req):
		return nil // someone else's object of that name: left alone
	case update(live):
		return r.Update(ctx, live)
	}
	return nil
}

// revokeApprovers removes the approvers' right to decide on req.
func (r *AccessRequestReconciler) revokeApprovers(ctx context.Context, req *identityv1alpha1.AccessRequest) error {
	key := types.NamespacedName{Namespace: req.Namespace, Name: approverRBACName(req.Name)}
	for _, obj := range []client.Object{&rbacv1.RoleBinding{}, &rbacv1.Role{}} {
		if err := r.APIReader.Get(ctx, key, obj); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return err
		}
		if !metav1.IsControlledBy(obj, req) {
			continue
		}
		if err := r.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}
