package ldap

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/conformance"
	"github.com/rosterhq/roster/test/samba"
	"github.com/rosterhq/roster/test/slapd"
)

// directory is one directory server the target tests run against, and how to reach it.
type directory struct {
	flavor    identityv1alpha1.LDAPFlavor
	conn      identityv1alpha1.LDAPConnection
	secrets   secrets
	base      string
	addOU     func(t testing.TB, dn string)
	externalA string
}

var ouCount atomic.Int64

// openLDAP starts slapd and returns it as a target directory (StartTLS, no passwords).
func openLDAP(t *testing.T) directory {
	srv := slapd.Start(t)
	return directory{
		flavor: identityv1alpha1.LDAPFlavorOpenLDAP, base: slapd.BaseDN, externalA: "employeeNumber",
		conn: identityv1alpha1.LDAPConnection{
			URL: srv.LDAPSURL, BindDN: slapd.AdminDN,
			PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "ldap", Key: "password"},
			TLS:               &identityv1alpha1.TLSConfig{CASecretRef: &identityv1alpha1.SecretKeySelector{Name: "ldap", Key: "ca"}},
		},
		secrets: secrets{"ldap/password": slapd.Password, "ldap/ca": string(srv.CA)},
		addOU: func(t testing.TB, dn string) {
			srv.Add(t, dn, map[string][]string{"objectClass": {"organizationalUnit"}})
		},
	}
}

// activeDirectory starts a Samba domain controller and returns it as a target
// directory (StartTLS, random initial passwords).
func activeDirectory(t *testing.T) directory {
	srv := samba.Start(t)
	return directory{
		flavor: identityv1alpha1.LDAPFlavorActiveDirectory, base: samba.BaseDN, externalA: "employeeID",
		conn: identityv1alpha1.LDAPConnection{
			URL: srv.URL, Security: identityv1alpha1.LDAPSecurityStartTLS, BindDN: samba.AdminDN,
			PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "ldap", Key: "password"},
			TLS:               &identityv1alpha1.TLSConfig{CASecretRef: &identityv1alpha1.SecretKeySelector{Name: "ldap", Key: "ca"}},
		},
		secrets: secrets{"ldap/password": samba.Password, "ldap/ca": string(srv.CA)},
		addOU:   srv.AddOU,
	}
}

// target returns a Target over new, empty OUs for users and groups in d.
func (d directory) target(t *testing.T, change func(*identityv1alpha1.LDAPConnector), mapping ...identityv1alpha1.ExpressionMapping) *Target {
	t.Helper()
	n := ouCount.Add(1)
	users := fmt.Sprintf("OU=users%d,%s", n, d.base)
	groups := fmt.Sprintf("OU=groups%d,%s", n, d.base)
	d.addOU(t, users)
	d.addOU(t, groups)
	spec := &identityv1alpha1.LDAPConnector{
		LDAPConnection: d.conn, Flavor: d.flavor, UsersDN: users, GroupsDN: groups,
		ExternalIDAttribute: d.externalA, PageSize: 50,
	}
	if change != nil {
		change(spec)
	}
	target, err := NewTargetFactory()(context.Background(), &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "directory"},
		Spec:       identityv1alpha1.AppConnectionSpec{LDAP: spec, Mapping: mapping},
	}, d.secrets)
	if err != nil {
		t.Fatal(err)
	}
	tt := target.(*Target)
	t.Cleanup(func() { tt.pool.close() })
	return tt
}

func TestTargetConformanceOpenLDAP(t *testing.T) {
	d := openLDAP(t)
	conformance.Target(t, func(t *testing.T) connectors.Target { return d.target(t, nil) })
}

func TestTargetConformanceActiveDirectory(t *testing.T) {
	d := activeDirectory(t)
	conformance.Target(t, func(t *testing.T) connectors.Target { return d.target(t, nil) })
}

// entryOf reads an entry's attributes straight from the directory.
func entryOf(t *testing.T, target *Target, id string, attrs ...string) *goldap.Entry {
	t.Helper()
	var e *goldap.Entry
	err := target.pool.do(context.Background(), func(conn *goldap.Conn) error {
		filter, err := target.idFilter(id)
		if err != nil {
			return err
		}
		res, err := conn.Search(goldap.NewSearchRequest(target.usersDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
		if err != nil {
			return err
		}
		if len(res.Entries) != 1 {
			return fmt.Errorf("%d entries have id %s", len(res.Entries), id)
		}
		e = res.Entries[0]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
