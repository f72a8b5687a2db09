package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
}

func (f floors) initialSync() time.Duration { return max(f.api, f.scim) }

var measuredFloors floors

// floor measures the initial sync's floor: the organisation's Users created with one
// status write each through the API server, and the same number of SCIM creates
// straight to the apps at the operator's concurrency.
func (b *bench) floor(ctx context.Context) error {
	org := people("e", 1, b.opts.Users)
	var err error
	if measuredFloors.api, err = b.apiFloor(ctx, org); err != nil {
		return err
	}
	if measuredFloors.scim, err = b.scimFloor(ctx, org); err != nil {
		return err
	}
	b.logf("  API server: %d Users + %d status writes in %s; apps: %d SCIM creates in %s\n",
		len(org), len(org), measuredFloors.api.Round(time.Millisecond), len(org)*b.opts.Apps, measuredFloors.scim.Round(time.Millisecond))
	return nil
}

func (b *bench) apiFloor(ctx context.Context, org []person) (time.Duration, error) {
	const ns = "floor"
	cfg := rest.CopyConfig(b.env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: b.env.Scheme})
	if err != nil {
		return 0, err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return 0, err
	}
	start, cpu := time.Now(), readCPU()
	err = parallel(ctx, len(org), b.opts.Concurrency, func(i int) error {
		u := floorUser(ns, org[i])
		if err := c.Create(ctx, u); err != nil {
			return err
		}
		u.Status = floorStatus(u, b.opts.Apps)
		return c.Status().Update(ctx, u)
	})
	took := time.Since(start)
	measuredFloors.apiCPU = readCPU().since(cpu)
	if err != nil {
		return 0, err
	}
	// Deleting 10,000 Users in one request can outlast the API server's request timeout
	// (the stream is then reset): ask again until none is left.
	return took, b.waitFor(ctx, timeoutFor(len(org)), 100*time.Millisecond, "deleting the floor's Users", func() (bool, string, error) {
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
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: b.opts.Concurrency}, Timeout: time.Minute}
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
