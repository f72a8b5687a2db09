package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	goldap "github.com/go-ldap/ldap/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/slapd"
)

// ldapFaults are the LDAP server's faults: it goes away, hangs, or resets every
// connection.
func ldapFaults(p *toxiproxy.Proxy) []sourceFault {
	return append(proxyFaults("the LDAP server", p), sourceFault{name: "the LDAP server resets every connection",
		start: func(t *testing.T) { addToxic(t, p, "reset", "reset_peer", "downstream", map[string]any{"timeout": 0}) },
		stop:  func(t *testing.T) { removeToxic(t, p, "reset") },
		says:  []string{"reset", "EOF", "closed", "Network Error"}})
}

// TestFaultyLDAPServer: the directory's LDAP server, reached through a proxy, goes away,
// hangs, or resets every connection. No User is suspended or deleted because of it, the
// DirectorySync says why it did not sync, and afterwards it syncs and follows changes
// again.
func TestFaultyLDAPServer(t *testing.T) {
	people := size(30, 500)
	ns := suite.env.Namespace(t)
	srv := slapd.Start(t)
	entries := make([]*goldap.AddRequest, people)
	for i := range entries {
		entries[i] = slapd.Person(fmt.Sprintf("p%04d", i), "Person", fmt.Sprint(i), "eng")
	}
	if err := srv.AddAll(entries); err != nil {
		t.Fatal(err)
	}
	proxy := proxyTo(t, ns+"-ldap", strings.TrimPrefix(srv.URL, "ldap://"))
	maxPercent := int32(20)
	suite.env.Create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ldap"}, StringData: map[string]string{"password": slapd.Password}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corp"},
			Spec: identityv1alpha1.DirectorySyncSpec{
				LDAP: &identityv1alpha1.LDAPSource{LDAPConnection: identityv1alpha1.LDAPConnection{
					URL: "ldap://" + proxy.Listen, Security: identityv1alpha1.LDAPSecurityNone, BindDN: slapd.AdminDN,
					PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "ldap", Key: "password"}}, BaseDN: slapd.BaseDN},
				SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxPercent: &maxPercent}}})
	startOperator(t, "a", suite.kubeconfig)
	survivesFaults(t, ns, "corp", people, ldapFaults(proxy))
	srv.Modify(t, "uid=p0000,"+slapd.People, map[string][]string{"title": {"Principal Engineer"}})
	changed := time.Now()
	waitUntil(t, 3*time.Minute, "a change after the faults is followed", func() (bool, string) {
		u := userOf(t, ns, "p0000")
		return u.Spec.Title == "Principal Engineer", u.Spec.Title
	})
	t.Logf("after the faults a change reached its User in %s", time.Since(changed).Round(time.Millisecond))
	if active, suspended := userStates(t, ns, "corp"); active != people || suspended != 0 {
		t.Fatalf("at the end: %d Users active and %d suspended, want all %d active", active, suspended, people)
	}
}

// userOf is the User with this userName in a namespace; empty if there is none.
func userOf(t *testing.T, ns, userName string) identityv1alpha1.User {
	t.Helper()
	var users identityv1alpha1.UserList
	if err := suite.env.Client.List(context.Background(), &users, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, u := range users.Items {
		if strings.EqualFold(u.Spec.UserName, userName) {
			return u
		}
	}
	return identityv1alpha1.User{}
}
