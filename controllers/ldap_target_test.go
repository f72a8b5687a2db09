package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/samba"
	"github.com/rosterhq/roster/test/slapd"
)

// adEntry is what the domain controller holds for one account, read as its
// Administrator.
type adEntry struct {
	dn, guid, sam string
	uac           string
	groups        []string
}

func readAD(t *testing.T, dc *samba.Server, filter string) (adEntry, bool) {
	t.Helper()
	var out adEntry
	found := false
	dc.Do(t, func(c *goldap.Conn) error {
		res, err := c.Search(goldap.NewSearchRequest("OU=staff,"+samba.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
			filter, []string{"objectGUID", "sAMAccountName", "userAccountControl", "memberOf"}, nil))
		if err != nil || len(res.Entries) == 0 {
			return err
		}
		e := res.Entries[0]
		found = true
		out = adEntry{dn: e.DN, guid: fmt.Sprintf("%x", e.GetRawAttributeValue("objectGUID")), sam: e.GetAttributeValue("sAMAccountName"),
			uac: e.GetAttributeValue("userAccountControl"), groups: e.GetAttributeValues("memberOf")}
		return nil
	})
	return out, found
}

// groupNames are the CNs of group DNs, sorted.
func groupNames(dns []string) []string {
	out := make([]string, 0, len(dns))
	for _, dn := range dns {
		cn, _, _ := strings.Cut(strings.TrimPrefix(dn, "CN="), ",")
		out = append(out, cn)
	}
	slices.Sort(out)
	return out
}

func accountOf(u *identityv1alpha1.User, app string) identityv1alpha1.UserAccount {
	for _, a := range u.Status.Accounts {
		if a.App == app {
			return a
		}
	}
	return identityv1alpha1.UserAccount{}
}

// TestActiveDirectoryAsATarget runs a person's whole life in a real Active Directory
// domain through the operator: joiner in the OU of their department and in a group,
// mover to another OU, rename, leaver disabled, return, and deletion.
func TestActiveDirectoryAsATarget(t *testing.T) {
	ns := namespace(t)
	dc := samba.Start(t)
	for _, ou := range []string{"OU=staff", "OU=eng,OU=staff", "OU=ops,OU=staff", "OU=groups,OU=staff"} {
		dc.AddOU(t, ou+","+samba.BaseDN)
	}
	conn := adConnection(t, ns, "corp-ad", dc)
	conn.Spec.LDAP.GroupsDN = "OU=groups,OU=staff," + samba.BaseDN
	conn.Spec.Deprovision = identityv1alpha1.DeprovisionPolicy{OnRemoval: identityv1alpha1.RemovalDelete}
	// linus has had an account since before Roster: it is adopted, not made twice.
	existing := dc.AddPerson(t, "OU=ops,OU=staff,"+samba.BaseDN, "linus", "ops")
	before, _ := readAD(t, dc, "(sAMAccountName=linus)")
	linus := newUser(ns, "linus", "ops")
	linus.Spec.UserName = "linus@roster.test"
	ada, grace := newUser(ns, "ada", "eng"), newUser(ns, "grace", "eng")
	create(t, conn, roleWithGrants(ns, "staff", "true", grant("corp-ad", "staff")),
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("corp-ad", "eng-team")), ada, grace, linus)

	var joined adEntry
	waitFor(t, "ada in OU=eng, enabled, in the staff group, her User Ready", func() (bool, string) {
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		acc := accountOf(u, "corp-ad")
		e, ok := readAD(t, dc, "(sAMAccountName=ada)")
		joined = e
		inGroup := slices.Equal(groupNames(e.groups), []string{"eng-team", "staff"})
		rdy, why := ready(u.Status.Conditions)
		return ok && rdy && acc.State == identityv1alpha1.AccountStateActive && e.uac == "512" && inGroup &&
				strings.EqualFold(e.dn, "CN=ada,OU=eng,OU=staff,"+samba.BaseDN),
			fmt.Sprintf("%s account=%+v entry=%+v", why, acc, e)
	})
	waitFor(t, "the AppConnection Ready with three managed accounts", func() (bool, string) {
		c := get(t, ns, "corp-ad", &identityv1alpha1.AppConnection{})
		ok, why := ready(c.Status.Conditions)
		return ok && c.Status.Accounts.Managed == 3, fmt.Sprintf("%s %+v", why, c.Status.Accounts)
	})
	adopted, _ := readAD(t, dc, "(sAMAccountName=linus)")
	if acc := accountOf(get(t, ns, linus.Name, &identityv1alpha1.User{}), "corp-ad"); adopted.guid != before.guid || !strings.EqualFold(adopted.dn, existing) ||
		acc.State != identityv1alpha1.AccountStateActive || acc.ExternalID == "" {
		t.Fatalf("linus's existing account should be adopted as it is: before %+v, after %+v, status %+v", before, adopted, acc)
	}

	// Mover and rename: a new department and a new userName move and rename the entry,
	// which keeps its objectGUID.
	update(t, ada, func(u *identityv1alpha1.User) {
		u.Spec.Department, u.Spec.UserName = "ops", "ada.lovelace@example.com"
	})
	waitFor(t, "ada.lovelace in OU=ops with the same objectGUID, out of eng-team", func() (bool, string) {
		e, ok := readAD(t, dc, "(sAMAccountName=ada.lovelace)")
		return ok && e.guid == joined.guid && strings.EqualFold(e.dn, "CN=ada.lovelace,OU=ops,OU=staff,"+samba.BaseDN) &&
			slices.Equal(groupNames(e.groups), []string{"staff"}), fmt.Sprintf("%+v", e)
	})

	// Leaver: the kill switch disables the account; return enables it.
	update(t, ada, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })
	waitFor(t, "ada disabled", func() (bool, string) {
		e, _ := readAD(t, dc, "(sAMAccountName=ada.lovelace)")
		return e.uac == "514", e.uac
	})
	update(t, ada, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateActive })
	waitFor(t, "ada enabled again", func() (bool, string) {
		e, _ := readAD(t, dc, "(sAMAccountName=ada.lovelace)")
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		return e.uac == "512" && accountOf(u, "corp-ad").State == identityv1alpha1.AccountStateActive, e.uac
	})

	// Deleting a User deletes the entry (onRemoval: Delete).
	if err := env.Client.Delete(context.Background(), grace); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "grace's entry gone", func() (bool, string) {
		_, ok := readAD(t, dc, "(sAMAccountName=grace)")
		return !ok, "still there"
	})
	waitFor(t, "two managed accounts left", func() (bool, string) {
		c := get(t, ns, "corp-ad", &identityv1alpha1.AppConnection{})
		return c.Status.Accounts.Managed == 2, fmt.Sprintf("%+v", c.Status.Accounts)
	})
}

// TestActiveDirectoryPasswordPolicyIsAnAccountMessage: a domain whose password policy
// refuses the password Roster sets says so on the person's account, in its own words.
func TestActiveDirectoryPasswordPolicyIsAnAccountMessage(t *testing.T) {
	ns := namespace(t)
	dc := samba.Start(t)
	dc.AddOU(t, "OU=staff,"+samba.BaseDN)
	dc.Do(t, func(c *goldap.Conn) error {
		req := goldap.NewModifyRequest(samba.BaseDN, nil)
		req.Replace("minPwdLength", []string{"40"})
		return c.Modify(req)
	})
	conn := adConnection(t, ns, "corp-ad", dc)
	conn.Spec.LDAP.URL, conn.Spec.LDAP.Security = dc.LDAPSURL, "" // LDAPS this time
	conn.Spec.Mapping = nil
	create(t, conn, roleWithGrants(ns, "staff", "true", grant("corp-ad")), newUser(ns, "ada", "eng"))
	waitFor(t, "ada's account failed with the domain's reason", func() (bool, string) {
		acc := accountOf(get(t, ns, "ada", &identityv1alpha1.User{}), "corp-ad")
		return acc.State == identityv1alpha1.AccountStateFailed && strings.Contains(acc.Message, "password policy") &&
			strings.Contains(acc.Message, "40 characters"), fmt.Sprintf("%+v", acc)
	})
	if _, ok := readAD(t, dc, "(sAMAccountName=ada)"); ok {
		t.Fatal("an account whose password the domain refused exists anyway")
	}
}

// adConnection connects an AppConnection to a Samba domain controller's OU=staff, with
// the department's OU below it.
func adConnection(t *testing.T, ns, name string, dc *samba.Server) *identityv1alpha1.AppConnection {
	t.Helper()
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		StringData: map[string]string{"password": samba.Password, "ca": string(dc.CA)}})
	burst := int32(100)
	return &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: identityv1alpha1.AppConnectionSpec{
			LDAP: &identityv1alpha1.LDAPConnector{
				LDAPConnection: identityv1alpha1.LDAPConnection{
					URL: dc.URL, Security: identityv1alpha1.LDAPSecurityStartTLS, BindDN: samba.AdminDN,
					PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: name, Key: "password"},
					TLS:               &identityv1alpha1.TLSConfig{CASecretRef: &identityv1alpha1.SecretKeySelector{Name: name, Key: "ca"}},
				},
				Flavor: identityv1alpha1.LDAPFlavorActiveDirectory, UsersDN: "OU=staff," + samba.BaseDN,
			},
			Mapping:   []identityv1alpha1.ExpressionMapping{{Target: "organizationalUnit", Expression: `"ou=" + user.department`}},
			RateLimit: &identityv1alpha1.RateLimit{Requests: 100, Burst: &burst},
		},
	}
}

// TestAnHRDirectoryProvisionsTheDomain: an OpenLDAP directory (HR's) drives an Active
// Directory domain through Roster; a leaver locked in OpenLDAP arrives by syncrepl and
// is disabled in Active Directory within seconds, not at the next full sync.
func TestAnHRDirectoryProvisionsTheDomain(t *testing.T) {
	ns := namespace(t)
	hr := slapd.Start(t)
	ada := hr.AddPerson(t, "ada", "Ada", "Lovelace", "eng")
	hr.AddPerson(t, "grace", "Grace", "Hopper", "eng")
	dc := samba.Start(t)
	for _, ou := range []string{"OU=staff", "OU=eng,OU=staff"} {
		dc.AddOU(t, ou+","+samba.BaseDN)
	}
	ldapSync(t, ns, hr, nil)
	create(t, adConnection(t, ns, "corp-ad", dc), roleWithGrants(ns, "staff", "true", grant("corp-ad")))

	waitFor(t, "ada and grace enabled in the domain, in OU=eng", func() (bool, string) {
		a, okA := readAD(t, dc, "(sAMAccountName=ada)")
		g, okG := readAD(t, dc, "(sAMAccountName=grace)")
		return okA && okG && a.uac == "512" && g.uac == "512" && strings.EqualFold(a.dn, "CN=ada,OU=eng,OU=staff,"+samba.BaseDN),
			fmt.Sprintf("ada=%+v grace=%+v", a, g)
	})

	start := time.Now()
	hr.Lock(t, ada)
	waitFor(t, "ada disabled in the domain", func() (bool, string) {
		a, _ := readAD(t, dc, "(sAMAccountName=ada)")
		return a.uac == "514", a.uac
	})
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("the leaver took %s to reach the domain: it waited for a full sync", took)
	}
	if g, _ := readAD(t, dc, "(sAMAccountName=grace)"); g.uac != "512" {
		t.Fatalf("grace, who did not leave, has userAccountControl %s", g.uac)
	}
	t.Logf("leaver locked in OpenLDAP, disabled in Active Directory after %s", time.Since(start).Round(time.Millisecond))
}
