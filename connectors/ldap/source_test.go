package ldap

import (
	"context"
	"errors"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/test/slapd"
)

type secrets map[string]string

func (s secrets) SecretValue(_ context.Context, name, key string) ([]byte, error) {
	v, ok := s[name+"/"+key]
	if !ok {
		return nil, connectors.ErrSecretNotFound
	}
	return []byte(v), nil
}

func source(t *testing.T, url string, security identityv1alpha1.LDAPSecurity, s secrets, change func(*identityv1alpha1.LDAPSource)) *Source {
	t.Helper()
	spec := &identityv1alpha1.LDAPSource{
		LDAPConnection: identityv1alpha1.LDAPConnection{
			URL: url, Security: security, BindDN: slapd.AdminDN,
			PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "ldap", Key: "password"},
		},
		BaseDN: slapd.BaseDN, PageSize: 2, Incremental: identityv1alpha1.IncrementalAuto,
	}
	if change != nil {
		change(spec)
	}
	if s == nil {
		s = secrets{"ldap/password": slapd.Password}
	}
	src, err := NewFactory()(context.Background(), &identityv1alpha1.DirectorySync{
		ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "corp"},
		Spec:       identityv1alpha1.DirectorySyncSpec{LDAP: spec},
	}, s)
	if err != nil {
		t.Fatal(err)
	}
	return src.(*Source)
}

func names(records []connectors.Record) []string {
	var out []string
	for _, r := range records {
		out = append(out, r.Attributes["userName"].(string))
	}
	sort.Strings(out)
	return out
}

func TestSnapshotReadsUsersAndNestedGroupsPageByPage(t *testing.T) {
	srv := slapd.Start(t)
	ada := srv.AddPerson(t, "ada", "Ada", "Lovelace", "eng")
	grace := srv.AddPerson(t, "grace", "Grace", "Hopper", "eng")
	linus := srv.AddPerson(t, "linus", "Linus", "Torvalds", "ops")
	compilers := srv.AddGroup(t, "compilers", ada, grace)
	srv.AddGroup(t, "engineering", compilers, linus)
	srv.Lock(t, linus)

	snap, err := source(t, srv.URL, identityv1alpha1.LDAPSecurityNone, nil, nil).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := names(snap.Records); !slices.Equal(got, []string{"ada", "grace", "linus"}) {
		t.Fatalf("records = %v", got)
	}
	byName := map[string]connectors.Record{}
	for _, r := range snap.Records {
		byName[r.Attributes["userName"].(string)] = r
		if r.ID == "" || r.Attributes["dn"] == "" || r.Attributes["mail"] == "" {
			t.Fatalf("record %v lacks id, dn or mail", r)
		}
	}
	if !byName["linus"].Disabled || byName["ada"].Disabled {
		t.Fatal("the locked account is not disabled, or another is")
	}
	groups := map[string]connectors.SourceGroup{}
	for _, g := range snap.Groups {
		groups[g.Name] = g
	}
	if eng := groups["engineering"]; len(eng.Members) != 2 || !slices.Contains(eng.Members, groups["compilers"].ID) || !slices.Contains(eng.Members, byName["linus"].ID) {
		t.Fatalf("engineering members = %v, want the compilers group and linus by id", eng.Members)
	}
	if snap.Watermark == "" {
		t.Fatal("no watermark")
	}
}

func TestModifyTimestampPolling(t *testing.T) {
	srv := slapd.Start(t)
	ada := srv.AddPerson(t, "ada", "Ada", "Lovelace", "eng")
	src := source(t, srv.URL, identityv1alpha1.LDAPSecurityNone, nil, func(s *identityv1alpha1.LDAPSource) {
		s.Incremental = identityv1alpha1.IncrementalModifyTimestamp
	})
	snap, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // modifyTimestamp has whole seconds
	srv.Modify(t, ada, map[string][]string{"title": {"Countess"}})
	srv.AddPerson(t, "grace", "Grace", "Hopper", "eng")
	set, err := src.Changes(context.Background(), snap.Watermark)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(set.Changed); !slices.Equal(got, []string{"ada", "grace"}) {
		t.Fatalf("changed = %v, want ada and grace", got)
	}
	if set.Watermark <= snap.Watermark {
		t.Fatalf("watermark did not move: %s", set.Watermark)
	}
}

func TestSyncReplReportsChangesAsTheyHappen(t *testing.T) {
	srv := slapd.Start(t)
	ada := srv.AddPerson(t, "ada", "Ada", "Lovelace", "eng")
	src := source(t, srv.URL, identityv1alpha1.LDAPSecurityNone, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var changes []connectors.ChangeSet
	done := make(chan error, 1)
	go func() {
		done <- src.Watch(ctx, func(c connectors.ChangeSet) {
			mu.Lock()
			changes = append(changes, c)
			mu.Unlock()
		})
	}()
	seen := func(match func(connectors.ChangeSet) bool) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(changes, match)
	}
	waitUntil(t, "the refresh phase reports ada", func() bool {
		return seen(func(c connectors.ChangeSet) bool {
			return len(c.Changed) == 1 && c.Changed[0].Attributes["userName"] == "ada"
		})
	})
	srv.Modify(t, ada, map[string][]string{"title": {"Countess"}})
	waitUntil(t, "a modify arrives", func() bool {
		return seen(func(c connectors.ChangeSet) bool {
			return len(c.Changed) == 1 && c.Changed[0].Attributes["title"] == "Countess"
		})
	})
	grace := srv.AddPerson(t, "grace", "Grace", "Hopper", "eng")
	srv.AddGroup(t, "eng", ada, grace)
	waitUntil(t, "a new group with both members arrives", func() bool {
		return seen(func(c connectors.ChangeSet) bool {
			return len(c.Groups) == 1 && c.Groups[0].Name == "eng" && len(c.Groups[0].Members) == 2
		})
	})
	srv.Delete(t, ada)
	waitUntil(t, "a delete arrives", func() bool {
		return seen(func(c connectors.ChangeSet) bool { return len(c.Deleted) == 1 })
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch ended with %v", err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTLSAndStartTLSWithACustomCA(t *testing.T) {
	srv := slapd.Start(t)
	srv.AddPerson(t, "ada", "Ada", "Lovelace", "eng")
	withCA := secrets{"ldap/password": slapd.Password, "ca/ca.crt": string(srv.CA)}
	trustCA := func(s *identityv1alpha1.LDAPSource) {
		s.TLS = &identityv1alpha1.TLSConfig{CASecretRef: &identityv1alpha1.SecretKeySelector{Name: "ca", Key: "ca.crt"}, ServerName: "localhost"}
	}
	for _, tc := range []struct {
		url      string
		security identityv1alpha1.LDAPSecurity
	}{{srv.LDAPSURL, identityv1alpha1.LDAPSecurityTLS}, {srv.URL, identityv1alpha1.LDAPSecurityStartTLS}} {
		if err := source(t, tc.url, tc.security, withCA, trustCA).Validate(context.Background()); err != nil {
			t.Fatalf("%s over %s: %v", tc.security, tc.url, err)
		}
		err := source(t, tc.url, tc.security, nil, nil).Validate(context.Background())
		if !connectors.IsPermanent(err) {
			t.Fatalf("%s without the CA = %v, want a permanent error about the certificate", tc.security, err)
		}
	}
}

func TestAWrongPasswordIsUnauthorized(t *testing.T) {
	srv := slapd.Start(t)
	err := source(t, srv.URL, identityv1alpha1.LDAPSecurityNone, secrets{"ldap/password": "nope"}, nil).Validate(context.Background())
	if !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatalf("got %v, want ErrUnauthorized", err)
	}
}

// silentServer accepts connections and never answers, as a hung directory does.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestLDAPCallsTimeOutAgainstAServerThatNeverAnswers(t *testing.T) {
	addr := silentServer(t)
	for _, tc := range []struct {
		url      string
		security identityv1alpha1.LDAPSecurity
	}{{"ldap://" + addr, identityv1alpha1.LDAPSecurityNone}, {"ldap://" + addr, identityv1alpha1.LDAPSecurityStartTLS}, {"ldaps://" + addr, identityv1alpha1.LDAPSecurityTLS}} {
		src := source(t, tc.url, tc.security, secrets{"ldap/password": "x"}, nil)
		src.dialer.timeout = 300 * time.Millisecond
		err := src.Validate(context.Background())
		if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
			t.Fatalf("%s over %s against a silent server = %v, want a timeout", tc.security, tc.url, err)
		}
	}
}

func TestLDAPCallsEndWithTheirContext(t *testing.T) {
	src := source(t, "ldap://"+silentServer(t), identityv1alpha1.LDAPSecurityNone, secrets{"ldap/password": "x"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := src.Snapshot(ctx); done <- err }()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a snapshot whose context ended succeeded against a server that never answers")
	}
}
