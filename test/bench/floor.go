package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/directory"
)

// floors holds what the same work takes without Roster, measured before the operator
// starts.
type floors struct {
	api, scim time.Duration
	apiCPU    cpuSeconds // used while the API server's floor was measured
	// ldap is the full LDAP sync's Users and their first status writes, at the
	// directory sync's concurrency; inboundRate, pushes (a POST or a PATCH) a second at
	// the inbound clients' concurrency, each a User write, its status write and the write
	// of the ConfigMap that keeps the pushed resource.
	ldap        time.Duration
	inboundRate float64
}

func (f floors) initialSync() time.Duration { return max(f.api, f.scim) }

var measuredFloors floors

// inboundFloorUsers is how many Users the inbound SCIM floor creates and updates (no
// more than the directory's in a run sized smaller, as --quick is).
const inboundFloorUsers = 2000

// floor measures the floors of the parts that run, before the operator starts: the
// initial sync's (the organisation's Users created with one status write each through
// the API server, and the same number of SCIM creates straight to the apps at the
// operator's concurrency) and the directory sources' (the LDAP directory's Users and
// status writes; the User and ConfigMap writes of inbound pushes).
func (b *bench) floor(ctx context.Context) error {
	if b.opts.runs("provisioning") {
		if err := b.provisioningFloor(ctx); err != nil {
			return err
		}
	}
	if !b.opts.runs("directory") {
		return nil
	}
	ldap := people("L", 1, b.opts.LDAPUsers)
	var err error
	if measuredFloors.ldap, _, err = b.apiFloor(ctx, "ldap-floor", ldap, directory.ApplyWorkers, statusWrite(0)); err != nil {
		return err
	}
	pushed := people("i", 1, min(inboundFloorUsers, b.opts.LDAPUsers))
	took, _, err := b.apiFloor(ctx, "inbound-floor", pushed, b.opts.InboundClients, keptPush)
	if err != nil {
		return err
	}
	measuredFloors.inboundRate = float64(2*len(pushed)) / took.Seconds()
	b.logf("  API server: %d LDAP Users + status writes in %s; pushes kept and applied at %.0f/s\n",
		len(ldap), measuredFloors.ldap.Round(time.Millisecond), measuredFloors.inboundRate)
	return nil
}

func (b *bench) provisioningFloor(ctx context.Context) error {
	org := people("e", 1, b.opts.Users)
	var err error
	if measuredFloors.api, measuredFloors.apiCPU, err = b.apiFloor(ctx, "floor", org, b.opts.Concurrency, statusWrite(b.opts.Apps)); err != nil {
		return err
	}
	if measuredFloors.scim, err = b.scimFloor(ctx, org); err != nil {
		return err
	}
	b.logf("  API server: %d Users + %d status writes in %s; apps: %d SCIM creates in %s\n",
		len(org), len(org), measuredFloors.api.Round(time.Millisecond), len(org)*b.opts.Apps, measuredFloors.scim.Round(time.Millisecond))
	return nil
}

// statusWrite is a User's first status write, converged in apps apps.
func statusWrite(apps int) func(context.Context, client.Client, *identityv1alpha1.User) error {
	return func(ctx context.Context, c client.Client, u *identityv1alpha1.User) error {
		u.Status = floorStatus(u, apps)
		return c.Status().Update(ctx, u)
	}
}

// keptPush is the rest of what an inbound client's POST and PATCH cause besides the
// User's create: the ConfigMap that keeps the pushed resource for every replica, created
// and then updated, the User's update, and the status write that follows each write of
// a User's spec (its observed generation), as the LDAP floor counts it.
func keptPush(ctx context.Context, c client.Client, u *identityv1alpha1.User) error {
	observed := statusWrite(0)
	if err := observed(ctx, c, u); err != nil {
		return err
	}
	resource, _ := json.Marshal(map[string]any{"userName": u.Spec.UserName, "active": true, "name": u.Spec.Name})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: u.Namespace, Name: u.Name},
		Data: map[string]string{"id": u.Name, "version": "1", "resource": string(resource)}}
	if err := c.Create(ctx, cm); err != nil {
		return err
	}
	cm.Data["version"] = "2"
	if err := c.Update(ctx, cm); err != nil {
		return err
	}
	u.Spec.Title = "Engineer"
	if err := c.Update(ctx, u); err != nil {
		return err
	}
	return observed(ctx, c, u)
}

// apiFloor creates the people's Users in namespace ns, each followed by one more write
// (then), at concurrency, straight through the API server; it reports how long that
// took and the CPU it cost, and deletes them and the ConfigMaps then wrote.
func (b *bench) apiFloor(ctx context.Context, ns string, org []person, concurrency int,
	then func(context.Context, client.Client, *identityv1alpha1.User) error) (time.Duration, cpuSeconds, error) {
	cfg := rest.CopyConfig(b.env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: b.env.Scheme})
	if err != nil {
		return 0, nil, err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return 0, nil, err
	}
	start, cpu := time.Now(), readCPU()
	err = parallel(ctx, len(org), concurrency, func(i int) error {
		u := floorUser(ns, org[i])
		if err := c.Create(ctx, u); err != nil {
			return err
		}
		return then(ctx, c, u)
	})
	took, used := time.Since(start), readCPU().since(cpu)
	if err == nil {
		err = c.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns))
	}
	if err != nil {
		return 0, nil, err
	}
	// Deleting 10,000 Users in one request can outlast the API server's request timeout
	// (the stream is then reset): ask again until none is left.
	return took, used, b.waitFor(ctx, timeoutFor(len(org)), 100*time.Millisecond, "deleting the floor's Users", func() (bool, string, error) {
		var list identityv1alpha1.UserList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.Limit(1)); err != nil || len(list.Items) == 0 {
			return err == nil, "", err
		}
		if err := c.DeleteAllOf(ctx, &identityv1alpha1.User{}, client.InNamespace(ns)); err != nil {
			return false, err.Error(), nil
		}
		return false, "", nil
	})
}

// floorUser is the User a DirectorySync writes for a person.
func floorUser(ns string, p person) *identityv1alpha1.User {
	u := &identityv1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr-" + strings.ToLower(p.id),
			Labels:      map[string]string{directory.LabelDirectorySync: "hr", directory.LabelDepartment: p.department, directory.LabelLocation: p.location},
			Annotations: map[string]string{directory.AnnotationSourceID: p.id}},
		Spec: identityv1alpha1.UserSpec{
			UserName: p.email, ExternalID: p.id, Title: p.title, Department: p.department, Location: p.location,
			DisplayName: p.given + " " + p.family,
			Name:        &identityv1alpha1.PersonName{GivenName: p.given, FamilyName: p.family},
			Emails:      []identityv1alpha1.Email{{Value: p.email, Type: "work", Primary: true}},
			State:       identityv1alpha1.UserStateActive,
		},
	}
	if p.manager != "" {
		u.Spec.Manager = &identityv1alpha1.LocalObjectReference{Name: "hr-" + strings.ToLower(p.manager)}
	}
	return u
}

// floorStatus is a converged User's status.
func floorStatus(u *identityv1alpha1.User, apps int) identityv1alpha1.UserStatus {
	now := metav1.Now()
	st := identityv1alpha1.UserStatus{Phase: identityv1alpha1.UserPhaseActive}
	st.ObservedGeneration = u.Generation
	st.Conditions = []metav1.Condition{{Type: identityv1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: identityv1alpha1.ReasonReconciled, Message: fmt.Sprintf("%d accounts active", apps), LastTransitionTime: now, ObservedGeneration: u.Generation}}
	for i := range apps {
		st.Accounts = append(st.Accounts, identityv1alpha1.UserAccount{App: appName(i), State: identityv1alpha1.AccountStateActive,
			ExternalID: fmt.Sprintf("%032x", i), LastSyncTime: &now, LastTransitionTime: &now})
	}
	return st
}

func (b *bench) scimFloor(ctx context.Context, org []person) (time.Duration, error) {
	for i := range b.opts.Apps {
		if err := b.apps.configure(AppConfig{Name: appName(i), Latency: b.opts.Latency}); err != nil {
			return 0, err
		}
	}
	// Every app is served on one host: keep a connection for each request in flight, as
	// each AppConnection's client does, rather than dial again for most requests.
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: b.opts.Concurrency * b.opts.Apps}, Timeout: time.Minute}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, b.opts.Apps)
	for i := range b.opts.Apps {
		wg.Go(func() {
			url := b.apps.url(appName(i)) + "/Users"
			errs[i] = parallel(ctx, len(org), b.opts.Concurrency, func(j int) error {
				return post(ctx, httpClient, url, scimUser(org[j]))
			})
		})
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	for i := range b.opts.Apps { // empty them for the operator
		if err := b.apps.configure(AppConfig{Name: appName(i), Latency: b.opts.Latency}); err != nil {
			return 0, err
		}
	}
	return took, nil
}

// scimUser is the resource Roster's default mapping sends for a person.
func scimUser(p person) map[string]any {
	return map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
		"userName":    p.email,
		"externalId":  p.id,
		"active":      true,
		"displayName": p.given + " " + p.family,
		"title":       p.title,
		"name":        map[string]any{"givenName": p.given, "familyName": p.family},
		"emails":      []any{map[string]any{"value": p.email, "type": "work", "primary": true}},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"department": p.department},
	}
}

func post(ctx context.Context, c *http.Client, url string, body any) error {
	data, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/scim+json")
	req.Header.Set("Authorization", "Bearer "+appToken)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read to the end, as the operator's client does, so that the connection is used
	// again: a body left unread closes it, and every create would dial anew.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}

// parallel runs do(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, do func(i int) error) error {
	next := make(chan int)
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func appName(i int) string { return fmt.Sprintf("app-%d", i+1) }
