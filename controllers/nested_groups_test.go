package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/samba"
	"github.com/rosterhq/roster/test/slapd"
)

// nestingDirectory is a directory the nested-groups test fills, and the DirectorySync
// that reads it.
type nestingDirectory struct {
	person   func(name string) string
	group    func(name string, members ...string) string
	addTo    func(group, member string)
	ldap     identityv1alpha1.LDAPSource
	password string
	ca       string
}

func slapdNesting(t *testing.T) nestingDirectory {
	srv := slapd.Start(t)
	return nestingDirectory{
		person: func(name string) string { return srv.AddPerson(t, name, name, "Person", "eng") },
		group:  func(name string, members ...string) string { return srv.AddGroup(t, name, members...) },
		addTo: func(group, member string) {
			conn, err := srv.Dial()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := goldap.NewModifyRequest(group, nil)
			req.Add("member", []string{member})
			if err := conn.Modify(req); err != nil {
				t.Fatal(err)
			}
		},
		ldap: identityv1alpha1.LDAPSource{
			LDAPConnection: identityv1alpha1.LDAPConnection{URL: srv.URL, Security: identityv1alpha1.LDAPSecurityNone, BindDN: slapd.AdminDN,
				PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "dir", Key: "password"}},
			BaseDN: slapd.BaseDN, PageSize: 2,
		},
		password: slapd.Password,
	}
}

func sambaNesting(t *testing.T) nestingDirectory {
	dc := samba.Start(t)
	ou := "OU=people," + samba.BaseDN
	dc.AddOU(t, ou)
	return nestingDirectory{
		person: func(name string) string { return dc.AddPerson(t, ou, name, "eng") },
		group:  func(name string, members ...string) string { return dc.AddGroup(t, ou, name, members...) },
		addTo: func(group, member string) {
			dc.Modify(t, group, func(r *goldap.ModifyRequest) { r.Add("member", []string{member}) })
		},
		ldap: identityv1alpha1.LDAPSource{
			LDAPConnection: identityv1alpha1.LDAPConnection{URL: dc.URL, Security: identityv1alpha1.LDAPSecurityStartTLS, BindDN: samba.AdminDN,
				PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "dir", Key: "password"},
				TLS:               &identityv1alpha1.TLSConfig{CASecretRef: &identityv1alpha1.SecretKeySelector{Name: "dir", Key: "ca"}}},
			Flavor: identityv1alpha1.LDAPFlavorActiveDirectory, BaseDN: ou, PageSize: 2,
		},
		password: samba.Password, ca: string(dc.CA),
	}
}

// TestNestedGroupsInBothDirectories: a person in a group inside a group inside a group
// is a member of all three, for a Role that names the outermost and for the Roles
// mirrored from the groups; groups that contain each other do not loop; the
// DirectorySync counts the groups it expanded. In slapd and in Active Directory.
func TestNestedGroupsInBothDirectories(t *testing.T) {
	for name, start := range map[string]func(*testing.T) nestingDirectory{"OpenLDAP": slapdNesting, "ActiveDirectory": sambaNesting} {
		t.Run(name, func(t *testing.T) {
			ns := namespace(t)
			d := start(t)
			ada, linus := d.person("ada"), d.person("linus")
			inner := d.group("inner", ada)
			middle := d.group("middle", inner)
			d.group("outer", middle)
			loopA := d.group("loopa", linus)
			loopB := d.group("loopb", loopA)
			d.addTo(loopA, loopB)

			create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dir"},
				StringData: map[string]string{"password": d.password, "ca": d.ca}})
			create(t, &identityv1alpha1.DirectorySync{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corp"},
				Spec: identityv1alpha1.DirectorySyncSpec{
					LDAP:                &d.ldap,
					MirrorGroupsAsRoles: &identityv1alpha1.GroupRoleMirror{NamePrefix: "dir-"},
				},
			}, &identityv1alpha1.Role{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everyone-in-outer"},
				Spec:       identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{Groups: []string{"outer"}}},
			})

			waitFor(t, "ada in all three groups, linus in both loop groups, the sync Ready", func() (bool, string) {
				users := syncedUsers(t, ns, "corp")
				ds := get(t, ns, "corp", &identityv1alpha1.DirectorySync{})
				ok, why := ready(ds.Status.Conditions)
				a, l := users["ada"], users["linus"]
				return ok && slices.Equal(a.Spec.Groups, []string{"inner", "middle", "outer"}) && slices.Equal(l.Spec.Groups, []string{"loopa", "loopb"}),
					fmt.Sprintf("%s ada=%v linus=%v", why, a.Spec.Groups, l.Spec.Groups)
			})
			waitFor(t, "the Role naming the outermost group has ada; each mirrored Role has its members", func() (bool, string) {
				outer := get(t, ns, "everyone-in-outer", &identityv1alpha1.Role{})
				var mirrored identityv1alpha1.RoleList
				if err := env.Client.List(context.Background(), &mirrored, client.InNamespace(ns)); err != nil {
					return false, err.Error()
				}
				counts := map[string]int32{}
				for _, r := range mirrored.Items {
					counts[r.Name] = r.Status.MemberCount
				}
				return outer.Status.MemberCount == 1 && counts["dir-inner"] == 1 && counts["dir-middle"] == 1 && counts["dir-outer"] == 1 &&
					counts["dir-loopa"] == 1 && counts["dir-loopb"] == 1, fmt.Sprintf("outer=%d mirrored=%v", outer.Status.MemberCount, counts)
			})
			ds := get(t, ns, "corp", &identityv1alpha1.DirectorySync{})
			if ds.Status.Counts.ExpandedGroups != 3 {
				t.Fatalf("expansion added 3 memberships (ada's middle and outer, linus's loopb), yet the sync reports %d", ds.Status.Counts.ExpandedGroups)
			}
		})
	}
}
