package ldap

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/conformance"
	"github.com/rosterhq/roster/connectors/mapping"
	"github.com/rosterhq/roster/test/ldapadmin"
	"github.com/rosterhq/roster/test/ldapcount"
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

func person(userName, department string, extra map[string]any) connectors.Account {
	attrs := map[string]any{
		connectors.AttrUserName: userName, "displayName": userName + " Person", "name.givenName": userName, "name.familyName": "Person",
		connectors.AttrEmails: []any{map[string]any{"value": userName + "@example.com", "primary": true}},
		attrDepartment:        department, attrOU: "ou=" + department,
	}
	for k, v := range extra {
		attrs[k] = v
	}
	return connectors.Account{Active: true, Attributes: attrs}
}

func TestActiveDirectoryJoinerMoverLeaverReturn(t *testing.T) {
	ctx := context.Background()
	d := activeDirectory(t)
	target := d.target(t, nil)
	for _, ou := range []string{"OU=eng", "OU=ops"} {
		d.addOU(t, ou+","+target.usersDN)
	}

	ada, err := target.Create(ctx, person("ada", "eng", nil))
	if err != nil {
		t.Fatal(err)
	}
	e := entryOf(t, target, ada.ID, "sAMAccountName", "userPrincipalName", "userAccountControl", "pwdLastSet", "department")
	if want := "CN=ada,OU=eng," + target.usersDN; !strings.EqualFold(e.DN, want) {
		t.Fatalf("ada's entry is %s, want %s", e.DN, want)
	}
	if e.GetAttributeValue("sAMAccountName") != "ada" || e.GetAttributeValue("userPrincipalName") != "ada@roster.test" ||
		e.GetAttributeValue("userAccountControl") != "512" || e.GetAttributeValue("pwdLastSet") != "0" {
		t.Fatalf("a joiner should be an enabled normal account with a password to change at first logon, named ada: %v", attributes(e))
	}

	// The helpdesk sets "password never expires" (0x10000); disabling keeps that bit.
	setUAC(t, d, e.DN, 512|0x10000)
	if _, err := target.Deactivate(ctx, ada); err != nil {
		t.Fatal(err)
	}
	if uac := entryOf(t, target, ada.ID, "userAccountControl").GetAttributeValue("userAccountControl"); uac != strconv.Itoa(512|0x10000|2) {
		t.Fatalf("after Deactivate userAccountControl = %s, want the disabled bit added to the others", uac)
	}
	found, err := target.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: "ADA"})
	if err != nil || found.Active || found.ID != ada.ID {
		t.Fatalf("a leaver's account must be found, inactive: %+v %v", found, err)
	}
	back, err := target.Update(ctx, found, person("ada", "eng", nil))
	if err != nil || !back.Active {
		t.Fatalf("return: %+v %v", back, err)
	}
	if uac := entryOf(t, target, ada.ID, "userAccountControl").GetAttributeValue("userAccountControl"); uac != strconv.Itoa(512|0x10000) {
		t.Fatalf("after the return userAccountControl = %s", uac)
	}

	// Mover and rename at once: a new OU and a new userName keep the objectGUID.
	moved, err := target.Update(ctx, back, person("ada.lovelace", "ops", nil))
	if err != nil {
		t.Fatal(err)
	}
	e = entryOf(t, target, ada.ID, "sAMAccountName", "userPrincipalName", "department")
	if want := "CN=ada.lovelace,OU=ops," + target.usersDN; !strings.EqualFold(e.DN, want) || moved.ID != ada.ID {
		t.Fatalf("after the move the entry is %s (id %s), want %s (id %s)", e.DN, moved.ID, want, ada.ID)
	}
	if e.GetAttributeValue("sAMAccountName") != "ada.lovelace" || e.GetAttributeValue("userPrincipalName") != "ada.lovelace@roster.test" || e.GetAttributeValue("department") != "ops" {
		t.Fatalf("after the rename: %v", attributes(e))
	}

	// The manager is written as a DN and read back as the manager's id.
	grace, err := target.Create(ctx, person("grace", "eng", map[string]any{attrManager: ada.ID}))
	if err != nil {
		t.Fatal(err)
	}
	if m := entryOf(t, target, grace.ID, "manager").GetAttributeValue("manager"); !strings.EqualFold(m, e.DN) {
		t.Fatalf("grace's manager is %q, want %s", m, e.DN)
	}
	listed := listAll(t, target)
	if got := listed[grace.ID].Attributes[attrManager]; got != ada.ID {
		t.Fatalf("listed manager = %v, want %s", got, ada.ID)
	}
	if diff := connectors.Differences(person("grace", "eng", map[string]any{attrManager: ada.ID}).Attributes, listed[grace.ID].Attributes); len(diff) != 0 {
		t.Fatalf("an account written as desired must list with no difference; differs in %v", diff)
	}
}

func TestActiveDirectoryRefusalsAPersonCanActOn(t *testing.T) {
	ctx := context.Background()
	d := activeDirectory(t)

	target := d.target(t, nil)
	_, err := target.Create(ctx, person("a.very.long.user.name", "", map[string]any{attrOU: nil}))
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "at most 20 characters") || !strings.Contains(err.Error(), "ldap:sAMAccountName") {
		t.Fatalf("a 21-character sAMAccountName: %v", err)
	}

	noPassword := d.target(t, func(s *identityv1alpha1.LDAPConnector) { s.InitialPassword = identityv1alpha1.LDAPPasswordNone })
	created, err := noPassword.Create(ctx, person("nopass", "", map[string]any{attrOU: nil}))
	if err != nil {
		t.Fatal(err)
	}
	if e := entryOf(t, noPassword, created.ID, "userAccountControl", "pwdLastSet"); e.GetAttributeValue("pwdLastSet") != "0" {
		t.Fatalf("an account created without a password has %v", attributes(e))
	}

	// A domain whose policy asks for more than the random password gives.
	d.modify(t, samba.BaseDN, "minPwdLength", "40")
	_, err = target.Create(ctx, person("strict", "", map[string]any{attrOU: nil}))
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "password policy") || !strings.Contains(err.Error(), "40 characters") {
		t.Fatalf("a password the domain's policy refuses: %v", err)
	}

	plain := d.conn
	plain.Security = identityv1alpha1.LDAPSecurityNone
	_, err = NewTargetFactory()(ctx, &identityv1alpha1.AppConnection{Spec: identityv1alpha1.AppConnectionSpec{LDAP: &identityv1alpha1.LDAPConnector{
		LDAPConnection: plain, Flavor: identityv1alpha1.LDAPFlavorActiveDirectory, UsersDN: "CN=Users," + samba.BaseDN,
	}}}, d.secrets)
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "encrypted connection") {
		t.Fatalf("random passwords over a plain connection: %v", err)
	}

	_, err = NewTargetFactory()(ctx, &identityv1alpha1.AppConnection{Spec: identityv1alpha1.AppConnectionSpec{
		LDAP:    &identityv1alpha1.LDAPConnector{LDAPConnection: d.conn, Flavor: identityv1alpha1.LDAPFlavorActiveDirectory, UsersDN: "CN=Users," + samba.BaseDN},
		Mapping: []identityv1alpha1.ExpressionMapping{{Target: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter", Expression: `"1"`}},
	}}, d.secrets)
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "costCenter, which this directory does not hold") {
		t.Fatalf("a mapping to what the directory cannot hold: %v", err)
	}
}

func TestDisabledUsersAreMovedAsideAndBack(t *testing.T) {
	ctx := context.Background()
	d := activeDirectory(t)
	target := d.target(t, nil)
	disabled := "OU=disabled," + target.usersDN
	d.addOU(t, disabled)
	target = d.target(t, func(s *identityv1alpha1.LDAPConnector) { s.UsersDN, s.DisabledUsersDN = target.usersDN, disabled })

	acc, err := target.Create(ctx, person("linus", "", map[string]any{attrOU: nil}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := target.Deactivate(ctx, acc); err != nil {
		t.Fatal(err)
	}
	if dn := entryOf(t, target, acc.ID).DN; !strings.EqualFold(dn, "CN=linus,"+disabled) {
		t.Fatalf("a deactivated account is at %s, want it in %s", dn, disabled)
	}
	listed := listAll(t, target)[acc.ID]
	if _, err := target.Update(ctx, listed, person("linus", "", map[string]any{attrOU: nil})); err != nil {
		t.Fatal(err)
	}
	if dn := entryOf(t, target, acc.ID).DN; !strings.EqualFold(dn, "CN=linus,"+target.usersDN) {
		t.Fatalf("a reactivated account is at %s, want it back in %s", dn, target.usersDN)
	}
}

func TestOpenLDAPLockRenameAndEmptyGroups(t *testing.T) {
	ctx := context.Background()
	d := openLDAP(t)
	target := d.target(t, nil)
	acc, err := target.Create(ctx, person("ada", "", map[string]any{attrOU: nil}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := target.Deactivate(ctx, acc); err != nil {
		t.Fatal(err)
	}
	if v := entryOf(t, target, acc.ID, "pwdAccountLockedTime").GetAttributeValue("pwdAccountLockedTime"); v != "000001010000Z" {
		t.Fatalf("a deactivated OpenLDAP account has pwdAccountLockedTime %q", v)
	}
	listed := listAll(t, target)[acc.ID]
	renamed, err := target.Update(ctx, listed, person("ada.lovelace", "", map[string]any{attrOU: nil}))
	if err != nil || !renamed.Active {
		t.Fatal(renamed, err)
	}
	e := entryOf(t, target, acc.ID, "pwdAccountLockedTime", "uid")
	if !strings.EqualFold(e.DN, "uid=ada.lovelace,"+target.usersDN) || e.GetAttributeValue("pwdAccountLockedTime") != "" {
		t.Fatalf("after rename and unlock: %s %v", e.DN, attributes(e))
	}

	group, err := target.EnsureGroup(ctx, "empty-soon")
	if err != nil {
		t.Fatal(err)
	}
	if err := target.ChangeMembers(ctx, group, []string{acc.ID}, nil); err != nil {
		t.Fatal(err)
	}
	group.Members = []string{acc.ID}
	if err := target.ChangeMembers(ctx, group, nil, []string{acc.ID}); err != nil {
		t.Fatalf("removing a groupOfNames' last member: %v", err)
	}
	if members := listedGroup(t, target, group.ID).Members; len(members) != 0 {
		t.Fatalf("members after removing the last = %v", members)
	}
}

func listAll(t *testing.T, target *Target) map[string]connectors.Account {
	t.Helper()
	out := map[string]connectors.Account{}
	cursor := ""
	for {
		page, err := target.ListAccounts(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Accounts {
			out[a.ID] = a
		}
		if cursor = page.Next; cursor == "" {
			return out
		}
	}
}

func listedGroup(t *testing.T, target *Target, id string) connectors.Group {
	t.Helper()
	cursor := ""
	for {
		page, err := target.ListGroups(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range page.Groups {
			if g.ID == id {
				return g
			}
		}
		if cursor = page.Next; cursor == "" {
			t.Fatalf("group %s not listed", id)
		}
	}
}

func attributes(e *goldap.Entry) map[string][]string {
	out := map[string][]string{}
	for _, a := range e.Attributes {
		out[a.Name] = a.Values
	}
	return out
}

func setUAC(t *testing.T, d directory, dn string, uac int) {
	t.Helper()
	d.modify(t, dn, "userAccountControl", strconv.Itoa(uac))
}

// modify replaces one attribute of an entry, as the directory's administrator.
func (d directory) modify(t *testing.T, dn, attr, value string) {
	t.Helper()
	d.admin().Do(t, func(c *goldap.Conn) error {
		req := goldap.NewModifyRequest(dn, nil)
		req.Replace(attr, []string{value})
		return c.Modify(req)
	})
}

// add adds an entry with these attributes.
func (d directory) add(t *testing.T, dn string, attrs map[string][]string) {
	t.Helper()
	d.admin().Do(t, func(c *goldap.Conn) error {
		req := goldap.NewAddRequest(dn, nil)
		for k, v := range attrs {
			req.Attribute(k, v)
		}
		return c.Add(req)
	})
}

// admin reaches the directory over plain LDAP as its administrator (Active Directory
// tests only: the OpenLDAP ones reach slapd over LDAPS).
func (d directory) admin() ldapadmin.Admin {
	return ldapadmin.Admin{URL: d.conn.URL, DN: d.conn.BindDN, Password: d.secrets["ldap/password"]}
}

// TestAUserMappedByDefaultListsWithNoDifference: what Roster's default mapping and the
// flavor's defaults make of a User is what the directory gives back, so that a resync
// after a create writes nothing.
func TestAUserMappedByDefaultListsWithNoDifference(t *testing.T) {
	for name, start := range map[string]func(*testing.T) directory{"OpenLDAP": openLDAP, "ActiveDirectory": activeDirectory} {
		t.Run(name, func(t *testing.T) {
			target := start(t).target(t, nil)
			env, err := mapping.NewEnv(mapping.AccountVars...)
			if err != nil {
				t.Fatal(err)
			}
			m, err := env.CompileMappings(append(slices.Clone(mapping.DefaultAccountMapping), target.DefaultMapping()...), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range []*identityv1alpha1.User{
				{ObjectMeta: metav1.ObjectMeta{Name: "ada"}, Spec: identityv1alpha1.UserSpec{
					UserName: "Ada@roster.test", Name: &identityv1alpha1.PersonName{GivenName: "Ada", FamilyName: "Lovelace", MiddleName: "King"},
					Emails: []identityv1alpha1.Email{{Value: "home@example.com", Type: "home"}, {Value: "ada@example.com", Type: "work", Primary: true}},
					Title:  "Countess", Department: "eng", EmployeeType: "Employee",
				}},
				{ObjectMeta: metav1.ObjectMeta{Name: "bare"}, Spec: identityv1alpha1.UserSpec{UserName: "bare@elsewhere.example"}},
			} {
				desired, err := m.Apply(map[string]any{
					"user": mapping.UserVars(u), "manager": mapping.ManagerVars("", "", ""), "entitlements": mapping.EntitlementVars(nil, "", ""),
				})
				if err != nil {
					t.Fatal(err)
				}
				created, err := target.Create(context.Background(), connectors.Account{Active: true, Attributes: desired})
				if err != nil {
					t.Fatal(err)
				}
				listed := listAll(t, target)[created.ID]
				if diff := connectors.Differences(desired, listed.Attributes); len(diff) != 0 {
					t.Fatalf("%s: desired %v, listed %v: differences in %v", u.Spec.UserName, desired, listed.Attributes, diff)
				}
			}
		})
	}
}

// TestActiveDirectoryMembersComeInRanges: Active Directory hands a large group's members
// out in ranges ("member;range=0-1499"); the target asks for the rest until the range
// ends with *. Here the first answer is a real ranged one of two members.
func TestActiveDirectoryMembersComeInRanges(t *testing.T) {
	ctx := context.Background()
	target := activeDirectory(t).target(t, nil)
	group, err := target.EnsureGroup(ctx, "ranged")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		a, err := target.Create(ctx, person(fmt.Sprintf("ranged%d", i), "", map[string]any{attrOU: nil}))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	if err := target.ChangeMembers(ctx, group, ids, nil); err != nil {
		t.Fatal(err)
	}
	var members []string
	err = target.pool.do(ctx, func(conn *goldap.Conn) error {
		k, err := target.find(conn, target.groupsDN, group.ID)
		if err != nil {
			return err
		}
		res, err := conn.Search(goldap.NewSearchRequest(k.dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{"member;range=0-1"}, nil))
		if err != nil {
			return err
		}
		if name := res.Entries[0].Attributes[0].Name; name != "member;range=0-1" {
			return fmt.Errorf("the directory answered %s, not a range", name)
		}
		members, err = target.members(conn, res.Entries[0])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(members)
	if len(slices.Compact(members)) != 5 {
		t.Fatalf("members read in ranges = %v, want the 5", members)
	}
}

// TestAnAdoptedEntryKeepsItsName: an account someone else named (CN=Ada Lovelace) is
// updated in place; only a change of what names it, or of its OU, moves it.
func TestAnAdoptedEntryKeepsItsName(t *testing.T) {
	ctx := context.Background()
	d := activeDirectory(t)
	target := d.target(t, nil)
	dn := "CN=Ada Lovelace," + target.usersDN
	d.add(t, dn, map[string][]string{"objectClass": {"user"}, "sAMAccountName": {"ada"}, "userPrincipalName": {"ada@roster.test"}})
	found, err := target.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := target.Update(ctx, found, person("ada", "", map[string]any{attrOU: nil, "title": "Countess"})); err != nil {
		t.Fatal(err)
	}
	if e := entryOf(t, target, found.ID, "title"); !strings.EqualFold(e.DN, dn) || e.GetAttributeValue("title") != "Countess" {
		t.Fatalf("after an update the entry is %s with %v, want it where it was with the new title", e.DN, attributes(e))
	}
}

// TestEachChangeIsOneRequest counts what the target sends, through a proxy in front of
// slapd: a create is one add (and the read of its id), an attribute change one modify
// with only that attribute, a leaver one modify, a member change one modify per group.
func TestEachChangeIsOneRequest(t *testing.T) {
	ctx := context.Background()
	srv := slapd.Start(t)
	counter, err := ldapcount.Start(strings.TrimPrefix(srv.URL, "ldap://"), nil, nil, "ou=groups,"+slapd.BaseDN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(counter.Stop)
	d := directory{
		flavor: identityv1alpha1.LDAPFlavorOpenLDAP, base: slapd.BaseDN,
		conn: identityv1alpha1.LDAPConnection{URL: "ldap://" + counter.Addr(), Security: identityv1alpha1.LDAPSecurityNone, BindDN: slapd.AdminDN,
			PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "ldap", Key: "password"}},
		secrets: secrets{"ldap/password": slapd.Password},
		addOU: func(t testing.TB, dn string) {
			srv.Add(t, dn, map[string][]string{"objectClass": {"organizationalUnit"}})
		},
	}
	target := d.target(t, func(s *identityv1alpha1.LDAPConnector) { s.GroupsDN = "ou=groups," + slapd.BaseDN })
	type counts struct{ adds, searches, modifies, renames, groupModifies int64 }
	step := func(what string, want counts, do func() error) {
		t.Helper()
		counter.Reset()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := counts{counter.Adds.Load(), counter.Searches.Load(), counter.Modifies.Load(), counter.Renames.Load(), counter.GroupModifies.Load()}
		if got != want {
			t.Fatalf("%s sent %+v, want %+v", what, got, want)
		}
	}
	var ada connectors.Account
	step("a create", counts{adds: 1, searches: 1}, func() (err error) {
		ada, err = target.Create(ctx, person("ada", "", map[string]any{attrOU: nil}))
		return err
	})
	step("a new title", counts{modifies: 1}, func() error {
		_, err := target.Update(ctx, ada, person("ada", "", map[string]any{attrOU: nil, "title": "Countess"}))
		return err
	})
	step("a leaver", counts{modifies: 1}, func() error { _, err := target.Deactivate(ctx, ada); return err })
	step("a rename", counts{renames: 1, modifies: 1}, func() error {
		_, err := target.Update(ctx, connectors.Account{ID: ada.ID, Active: true, Attributes: person("ada", "", map[string]any{attrOU: nil, "title": "Countess"}).Attributes},
			person("ada.lovelace", "", map[string]any{attrOU: nil, "title": "Countess"}))
		return err
	})
	group, err := target.EnsureGroup(ctx, "staff")
	if err != nil {
		t.Fatal(err)
	}
	step("adding a member", counts{groupModifies: 1}, func() error { return target.ChangeMembers(ctx, group, []string{ada.ID}, nil) })
}
