package controllers

import (
	"context"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Field indexes over the informer caches.
const (
	indexAssignmentApp  = "spec.app"
	indexAssignmentUser = "spec.userRef.name"
	indexAssignmentRole = "spec.roleRef.name"
	indexUserManager    = "spec.manager.name"
	indexUserName       = "userName.lower"
	indexSecrets        = "secretRefs"
	indexConfigMaps     = "configMapRefs"
	labelRole           = "identity.roster.dev/role"
)

func addIndexes(ctx context.Context, mgr manager.Manager) error {
	idx := mgr.GetFieldIndexer()
	indexes := []struct {
		obj     client.Object
		field   string
		extract client.IndexerFunc
	}{
		{&identityv1alpha1.AppAssignment{}, indexAssignmentApp, func(o client.Object) []string {
			return []string{o.(*identityv1alpha1.AppAssignment).Spec.App}
		}},
		{&identityv1alpha1.AppAssignment{}, indexAssignmentUser, func(o client.Object) []string {
			if ref := o.(*identityv1alpha1.AppAssignment).Spec.UserRef; ref != nil {
				return []string{ref.Name}
			}
			return nil
		}},
		{&identityv1alpha1.AppAssignment{}, indexAssignmentRole, func(o client.Object) []string {
			if ref := o.(*identityv1alpha1.AppAssignment).Spec.RoleRef; ref != nil {
				return []string{ref.Name}
			}
			return nil
		}},
		{&identityv1alpha1.User{}, indexUserManager, func(o client.Object) []string {
			if m := o.(*identityv1alpha1.User).Spec.Manager; m != nil {
				return []string{m.Name}
			}
			return nil
		}},
		{&identityv1alpha1.User{}, indexUserName, func(o client.Object) []string {
			return []string{strings.ToLower(o.(*identityv1alpha1.User).Spec.UserName)}
		}},
		{&identityv1alpha1.AppConnection{}, indexSecrets, func(o client.Object) []string {
			return secretNames(o.(*identityv1alpha1.AppConnection))
		}},
		{&identityv1alpha1.DirectorySync{}, indexSecrets, func(o client.Object) []string {
			return syncSecretNames(o.(*identityv1alpha1.DirectorySync))
		}},
		{&identityv1alpha1.DirectorySync{}, indexConfigMaps, func(o client.Object) []string {
			if h := o.(*identityv1alpha1.DirectorySync).Spec.HRIS; h != nil && h.ConfigMapRef != nil {
				return []string{h.ConfigMapRef.Name}
			}
			return nil
		}},
	}
	for _, i := range indexes {
		if err := idx.IndexField(ctx, i.obj, i.field, i.extract); err != nil {
			return err
		}
	}
	return nil
}

// syncSecretNames lists the Secrets a DirectorySync reads.
func syncSecretNames(ds *identityv1alpha1.DirectorySync) []string {
	var names []string
	s := ds.Spec
	switch {
	case s.LDAP != nil:
		names = append(names, s.LDAP.PasswordSecretRef.Name)
		if t := s.LDAP.TLS; t != nil && t.CASecretRef != nil {
			names = append(names, t.CASecretRef.Name)
		}
	case s.SCIM != nil:
		names = append(names, s.SCIM.TokenSecretRef.Name)
	case s.HRIS != nil:
		if s.HRIS.SecretRef != nil {
			names = append(names, s.HRIS.SecretRef.Name)
		}
		for _, h := range s.HRIS.Headers {
			if h.ValueFrom != nil {
				names = append(names, h.ValueFrom.Name)
			}
		}
		if t := s.HRIS.TLS; t != nil && t.CASecretRef != nil {
			names = append(names, t.CASecretRef.Name)
		}
	}
	return names
}

// secretNames lists the Secrets an AppConnection reads.
func secretNames(c *identityv1alpha1.AppConnection) []string {
	var names []string
	add := func(n string) {
		if n != "" {
			names = append(names, n)
		}
	}
	addTLS := func(t *identityv1alpha1.TLSConfig) {
		if t != nil && t.CASecretRef != nil {
			add(t.CASecretRef.Name)
		}
	}
	addHeaders := func(hs []identityv1alpha1.HTTPHeader) {
		for _, h := range hs {
			if h.ValueFrom != nil {
				add(h.ValueFrom.Name)
			}
		}
	}
	s := c.Spec
	switch {
	case s.SCIM != nil:
		add(s.SCIM.Auth.SecretRef.Name)
		addHeaders(s.SCIM.Headers)
		addTLS(s.SCIM.TLS)
	case s.LDAP != nil:
		add(s.LDAP.PasswordSecretRef.Name)
		addTLS(s.LDAP.TLS)
	case s.GitHub != nil:
		add(s.GitHub.TokenSecretRef.Name)
	case s.Webhook != nil:
		add(s.Webhook.SigningSecretRef.Name)
		addHeaders(s.Webhook.Headers)
		addTLS(s.Webhook.TLS)
	}
	return names
}
