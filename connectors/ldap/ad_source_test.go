package ldap

import (
	"context"
	"regexp"
	"slices"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/test/samba"
)

// adPeople is the OU the Active Directory source tests put their people and groups in.
const adPeople = "OU=people," + samba.BaseDN

func adSource(t *testing.T, dc *samba.Server, mode identityv1alpha1.LDAPIncrementalMode) *Source {
	t.Helper()
	spec := &identityv1alpha1.LDAPSource{
		LDAPConnection: identityv1alpha1.LDAPConnection{
			URL: dc.URL, Security: identityv1alpha1.LDAPSecurityStartTLS, BindDN: samba.AdminDN,
			PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "ad", Key: "password"},
			TLS:               &identityv1alpha1.TLSConfig{CASecretRef: &identityv1alpha1.SecretKeySelector{Name: "ad", Key: "ca"}},
		},
		Flavor: identityv1alpha1.LDAPFlavorActiveDirectory, BaseDN: adPeople, PageSize: 2, Incremental: mode,
	}
	src, err := NewFactory()(context.Background(), &identityv1alpha1.DirectorySync{
		ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "corp"},
		Spec:       identityv1alpha1.DirectorySyncSpec{LDAP: spec},
	}, secrets{"ad/password": samba.Password, "ad/ca": string(dc.CA)})
	if err != nil {
		t.Fatal(err)
	}
	return src.(*Source)
}

var guidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestActiveDirectorySourceFullSyncAndDirSync reads a real domain: a full sync page by
// page with objectGUIDs as ids, disabled accounts and nested groups; then DirSync
// reports a changed attribute, the disabled bit and a deletion (through its tombstone).
func TestActiveDirectorySourceFullSyncAndDirSync(t *testing.T) {
	ctx := context.Background()
	dc := samba.Start(t)
	dc.AddOU(t, adPeople)
	ada := dc.AddPerson(t, adPeople, "ada", "eng")
	grace := dc.AddPerson(t, adPeople, "grace", "eng")
	linus := dc.AddPerson(t, adPeople, "linus", "ops")
	gone := dc.AddPerson(t, adPeople, "gone", "ops")
	dc.Modify(t, gone, func(r *goldap.ModifyRequest) { r.Replace("userAccountControl", []string{"514"}) })
	compilers := dc.AddGroup(t, adPeople, "compilers", ada, grace)
	dc.AddGroup(t, adPeople, "engineering", compilers, linus)

	src := adSource(t, dc, identityv1alpha1.IncrementalDirSync)
	snap, err := src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]connectors.Record{}
	for _, r := range snap.Records {
		byName[r.Attributes["userName"].(string)] = r
		if !guidPattern.MatchString(r.ID) {
			t.Fatalf("%v has id %q, want its objectGUID", r.Attributes["userName"], r.ID)
		}
	}
	if got := names(snap.Records); !slices.Equal(got, []string{"ada", "gone", "grace", "linus"}) {
		t.Fatalf("records = %v", got)
	}
	if !byName["gone"].Disabled || byName["ada"].Disabled {
		t.Fatal("the disabled bit of userAccountControl must mark the record disabled, and only it")
	}
	groups := map[string]connectors.SourceGroup{}
	for _, g := range snap.Groups {
		groups[g.Name] = g
	}
	if eng := groups["engineering"]; !slices.Contains(eng.Members, groups["compilers"].ID) || !slices.Contains(eng.Members, byName["linus"].ID) {
		t.Fatalf("engineering's members %v should be the compilers group and linus", eng.Members)
	}

	// The full sync's watermark is a DirSync cookie: changes after it come back alone.
	dc.Modify(t, ada, func(r *goldap.ModifyRequest) { r.Replace("title", []string{"Countess"}) })
	dc.Modify(t, linus, func(r *goldap.ModifyRequest) { r.Replace("userAccountControl", []string{"514"}) })
	dc.Delete(t, grace)

	set, err := src.Changes(ctx, snap.Watermark)
	if err != nil {
		t.Fatal(err)
	}
	changed := map[string]connectors.Record{}
	for _, r := range set.Changed {
		changed[r.ID] = r
	}
	if r, ok := changed[byName["ada"].ID]; !ok || r.Attributes["title"] != "Countess" {
		t.Fatalf("ada's new title is not among the changes: %+v", set.Changed)
	}
	if r, ok := changed[byName["linus"].ID]; !ok || !r.Disabled {
		t.Fatalf("linus, disabled in the directory, should come back disabled: %+v", set.Changed)
	}
	if !slices.Contains(set.Deleted, byName["grace"].ID) {
		t.Fatalf("grace's deletion should come back as her objectGUID; deleted = %v", set.Deleted)
	}
	if _, ok := changed[byName["gone"].ID]; ok {
		t.Fatal("an entry that did not change came back from DirSync")
	}
}
