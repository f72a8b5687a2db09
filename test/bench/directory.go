package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/directory"
	"github.com/rosterhq/roster/test/slapd"
)

// incrementalChanges is how many directory entries the incremental sync follows.
const incrementalChanges = 10

// directorySync measures the directory sources: a full sync of a real slapd, changes
// followed as slapd reports them, and identity-provider clients pushing to the inbound
// SCIM endpoint.
func (b *bench) directorySync(ctx context.Context) error {
	if err := b.ldapSync(ctx); err != nil {
		return err
	}
	return b.inboundSCIM(ctx)
}

func (b *bench) ldapSync(ctx context.Context) error {
	const ns = "ldap"
	dir, err := os.MkdirTemp("", "roster-bench-slapd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := slapd.Run(dir)
	if err != nil {
		return err
	}
	defer srv.Stop()
	uids, err := loadDirectory(srv, b.opts.LDAPUsers)
	if err != nil {
		return err
	}
	if err := b.createAll(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ldap"}, StringData: map[string]string{"password": slapd.Password}},
	); err != nil {
		return err
	}
	ds := &identityv1alpha1.DirectorySync{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corp"},
		Spec: identityv1alpha1.DirectorySyncSpec{LDAP: &identityv1alpha1.LDAPSource{
			LDAPConnection: identityv1alpha1.LDAPConnection{URL: srv.URL, Security: identityv1alpha1.LDAPSecurityNone, BindDN: slapd.AdminDN,
				PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "ldap", Key: "password"}},
			BaseDN: slapd.BaseDN,
		}},
	}
	stopProfile, err := b.startCPUProfile("ldap-full-sync")
	if err != nil {
		return err
	}
	start := time.Now()
	if err := b.createAll(ctx, ds); err != nil {
		stopProfile()
		return err
	}
	// Every 250 ms: listing 10,000 Users from the cache costs the process a few ms of CPU
	// each time, in the operator's process.
	err = b.waitFor(ctx, timeoutFor(len(uids)), 250*time.Millisecond, "the full LDAP sync", func() (bool, string, error) {
		return b.syncedUsers(ctx, ns, "corp", len(uids))
	})
	full := time.Since(start)
	stopProfile()
	if err != nil {
		return err
	}

	changed := uids[:min(incrementalChanges, len(uids))]
	conn, err := srv.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	start = time.Now()
	for _, uid := range changed {
		req := goldap.NewModifyRequest("uid="+uid+","+slapd.People, nil)
		req.Replace("title", []string{"Principal Engineer"})
		if err := conn.Modify(req); err != nil {
			return err
		}
	}
	if err := b.waitFor(ctx, time.Minute, 10*time.Millisecond, "the incremental LDAP sync", func() (bool, string, error) {
		return b.titlesAre(ctx, ns, changed, "Principal Engineer")
	}); err != nil {
		return err
	}
	incremental := time.Since(start)
	b.report.add(againstFloor("directory sync", fmt.Sprintf("full LDAP sync of %d users", len(uids)), full.Seconds(), measuredFloors.ldap.Seconds(), 1.2, "s",
		map[string]float64{"usersPerSecond": float64(len(uids)) / full.Seconds()}))
	b.report.add(atMost("directory sync", fmt.Sprintf("incremental LDAP sync of %d changes", len(changed)), incremental.Seconds(), 2, "s", nil))
	b.logf("  LDAP: %d users in %s, %d changes followed in %s\n", len(uids), full.Round(time.Millisecond), len(changed), incremental.Round(time.Millisecond))
	return nil
}

// loadDirectory adds n people and a group per department to slapd, over a few
// connections at once.
func loadDirectory(srv *slapd.Server, n int) ([]string, error) {
	uids := make([]string, n)
	members := map[string][]string{}
	var entries []*goldap.AddRequest
	for i, p := range people("L", 1, n) {
		uids[i] = strings.ToLower(p.id)
		entries = append(entries, slapd.Person(uids[i], p.given, p.family, p.department))
		members[p.department] = append(members[p.department], "uid="+uids[i]+","+slapd.People)
	}
	const connections = 4
	errs := make([]error, connections)
	var wg sync.WaitGroup
	for c := range connections {
		wg.Go(func() {
			var mine []*goldap.AddRequest
			for i := c; i < len(entries); i += connections {
				mine = append(mine, entries[i])
			}
			errs[c] = srv.AddAll(mine)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	var groups []*goldap.AddRequest
	for _, d := range departments {
		if len(members[d]) == 0 {
			continue
		}
		g := goldap.NewAddRequest("cn="+d+","+slapd.Groups, nil)
		g.Attribute("objectClass", []string{"groupOfNames"})
		g.Attribute("cn", []string{d})
		g.Attribute("member", members[d])
		groups = append(groups, g)
	}
	return uids, srv.AddAll(groups)
}

// syncedUsers reports whether a DirectorySync has written n Users, each with its first
// status, and says it synced.
func (b *bench) syncedUsers(ctx context.Context, ns, name string, n int) (bool, string, error) {
	// The DirectorySync first: listing 10,000 Users every 100 ms while it syncs would
	// cost the process's CPU that the sync needs.
	ds := &identityv1alpha1.DirectorySync{}
	if err := b.op.cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ds); apierrors.IsNotFound(err) {
		return false, "the DirectorySync is not in the cache yet", nil
	} else if err != nil {
		return false, "", err
	}
	if why := notReady(ds, ds.Status.CommonStatus); why != "" {
		return false, why, nil
	}
	if ds.Status.LastSyncTime == nil {
		return false, "the DirectorySync has not synced yet", nil
	}
	var users identityv1alpha1.UserList
	if err := b.op.cache.List(ctx, &users, client.InNamespace(ns), client.MatchingLabels{directory.LabelDirectorySync: name}, client.UnsafeDisableDeepCopy); err != nil {
		return false, "", err
	}
	// Each User's first status write is part of the sync, as it is of its floor.
	answered := 0
	for i := range users.Items {
		if users.Items[i].Status.ObservedGeneration == users.Items[i].Generation {
			answered++
		}
	}
	return answered >= n, fmt.Sprintf("%d/%d Users, %d with their status", len(users.Items), n, answered), nil
}

// titlesAre reports whether the Users of these LDAP uids have the title.
func (b *bench) titlesAre(ctx context.Context, ns string, uids []string, title string) (bool, string, error) {
	var users identityv1alpha1.UserList
	if err := b.op.cache.List(ctx, &users, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return false, "", err
	}
	want := map[string]bool{}
	for _, uid := range uids {
		want[uid] = true // the OpenLDAP default: userName is the uid
	}
	done := 0
	for _, u := range users.Items {
		if want[strings.ToLower(u.Spec.UserName)] && u.Spec.Title == title {
			done++
		}
	}
	return done == len(uids), fmt.Sprintf("%d/%d changed", done, len(uids)), nil
}

// inboundSCIM has identity-provider clients create and change users at the inbound
// SCIM endpoint as fast as it answers, and counts the requests answered per second.
func (b *bench) inboundSCIM(ctx context.Context) error {
	const ns, name, token = "inbound", "idp", "bench-identity-provider-token"
	if err := b.createAll(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp-token"}, StringData: map[string]string{"token": token}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: identityv1alpha1.DirectorySyncSpec{SCIM: &identityv1alpha1.SCIMSource{
				TokenSecretRef: identityv1alpha1.SecretKeySelector{Name: "idp-token", Key: "token"}}}},
	); err != nil {
		return err
	}
	base := b.op.inbound + "/scim/v2/" + ns + "/" + name
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: b.opts.InboundClients}, Timeout: time.Minute}
	if err := b.waitFor(ctx, time.Minute, 50*time.Millisecond, "the inbound SCIM endpoint", func() (bool, string, error) {
		status, _, err := scimCall(ctx, hc, http.MethodGet, base+"/Users?count=1", token, nil)
		return err == nil && status == http.StatusOK, fmt.Sprint(status, err), nil
	}); err != nil {
		return err
	}
	stopProfile, err := b.startCPUProfile("inbound-scim")
	if err != nil {
		return err
	}
	writesBefore, err := b.apiWrites(ctx)
	if err != nil {
		return err
	}
	cpu := readCPU()
	var answered, failed, created atomic.Int64
	deadline := time.Now().Add(b.opts.InboundDuration)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range b.opts.InboundClients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				user := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
					"userName": fmt.Sprintf("c%d-u%d@idp.example", c, i), "active": true,
					"name": map[string]any{"givenName": "Client", "familyName": fmt.Sprint(c)}}
				status, body, err := scimCall(ctx, hc, http.MethodPost, base+"/Users", token, user)
				if err != nil || status != http.StatusCreated {
					failed.Add(1)
					continue
				}
				answered.Add(1)
				created.Add(1)
				var res struct{ ID string }
				_ = json.Unmarshal(body, &res)
				patch := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
					"Operations": []any{map[string]any{"op": "replace", "path": "title", "value": "Engineer"}}}
				if status, _, err := scimCall(ctx, hc, http.MethodPatch, base+"/Users/"+res.ID, token, patch); err != nil || status != http.StatusOK {
					failed.Add(1)
					continue
				}
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	stopProfile()
	n := int(created.Load())
	if err := b.waitFor(ctx, timeoutFor(n), 100*time.Millisecond, "the pushed Users", func() (bool, string, error) {
		return b.syncedUsers(ctx, ns, name, n)
	}); err != nil {
		return err
	}
	cpu = readCPU().since(cpu)
	writesAfter, err := b.apiWrites(ctx)
	if err != nil {
		return err
	}
	rate := float64(answered.Load()) / took.Seconds()
	details := map[string]float64{"requests": float64(answered.Load()), "failed": float64(failed.Load()), "usersCreated": float64(n), "seconds": took.Seconds()}
	cpu.addTo(details, "cpuSeconds:")
	// The floor makes three writes a push; what the operator made, by resource, until
	// every pushed User was synced.
	perPush := map[string]float64{}
	for k, w := range writesAfter.minus(writesBefore) {
		perPush[k.String()] = round(w / float64(answered.Load()))
		details["apiWritesPerPush:"+k.String()] = perPush[k.String()]
	}
	res := b.report.add(aboveFloor("directory sync", fmt.Sprintf("inbound SCIM POST+PATCH, %d clients", b.opts.InboundClients), rate, measuredFloors.inboundRate, 0.8, "req/s", details))
	res.Met = res.Met && failed.Load() == 0
	b.logf("  inbound SCIM: %d requests in %s (%.0f/s), %d failed; writes a push %v\n", answered.Load(), took.Round(time.Millisecond), rate, failed.Load(), perPush)
	return nil
}

func scimCall(ctx context.Context, hc *http.Client, method, url, token string, body any) (int, []byte, error) {
	var reader *bytes.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		reader = bytes.NewReader(data)
	} else {
		reader = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, reader)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes(), err
}
