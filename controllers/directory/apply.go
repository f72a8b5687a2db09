package directory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/controllers/safety"
)

// annotationVanished marks a User suspended because its record left the source.
const annotationVanished = "identity.roster.dev/vanished"

// ApplyWorkers is how many Users are written at once.
const ApplyWorkers = 8

// run is one converge's plan.
type run struct {
	skips       map[string]skip // record id → why it was not written
	skipped     []string        // the ids of skips, in the order they were met
	desired     []desiredUser
	vanishing   []*identityv1alpha1.User
	deleting    []*identityv1alpha1.User
	suspensions map[string]bool // User names newly suspended or deleted
	existing    map[string]*identityv1alpha1.User
	full        bool // a full sync: it speaks for the whole source
	// nextDelete is when the next suspended User's deleteAfter grace passes; zero: none.
	nextDelete time.Time
	// finalizers are what a written User carries beside the main finalizer (Config.Finalizers).
	finalizers []string
}

// converge brings the Users of the given records in step; a full sync also handles
// Users whose record is gone and Users whose grace has passed.
func (s *Syncer) converge(ctx context.Context, ids []string, full bool, vanishedIDs []string) (map[string]skip, error) {
	var owned []identityv1alpha1.User
	var err error
	total := 0
	if full {
		owned, err = s.owned(ctx)
		total = len(owned)
	} else {
		owned, err = s.ownedOf(ctx, append(slices.Clone(ids), vanishedIDs...))
		s.mu.Lock()
		total = s.status.Users
		s.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	r := s.plan(ids, full, vanishedIDs, owned)
	held := s.checkSafety(r, total, full && len(r.desired)+len(r.skips) == 0 && len(owned) > 0)
	var counts applyCounts
	for _, wave := range managersFirst(r.desired) {
		s.applyAll(ctx, r, wave, held, &counts)
	}
	created, updated, suspended := &counts.created, &counts.updated, &counts.suspended
	var deleted atomic.Int32
	for _, u := range r.vanishing {
		if held[u.Name] {
			continue
		}
		if err := s.vanish(ctx, u); err != nil {
			return r.skips, err
		}
		suspended.Add(1)
	}
	for _, u := range r.deleting {
		if held[u.Name] {
			continue
		}
		if err := s.client.Delete(ctx, u); client.IgnoreNotFound(err) != nil {
			return r.skips, err
		}
		deleted.Add(1)
	}
	s.mu.Lock()
	if s.cfg.DeleteAfter > 0 && suspended.Load() > 0 {
		s.scheduleDeletionLocked(s.now().Add(s.cfg.DeleteAfter))
	}
	c := &s.status.Counts
	c.Created += created.Load()
	c.Updated += updated.Load()
	c.Suspended += suspended.Load()
	c.Deleted += deleted.Load()
	c.ExpandedGroups = 0
	for _, n := range s.members.nested {
		c.ExpandedGroups += int32(n)
	}
	s.status.Users = total + int(created.Load()) - int(deleted.Load())
	s.mu.Unlock()
	if err, ok := counts.firstErr.Load().(error); ok {
		return r.skips, err
	}
	return r.skips, nil
}

// applyCounts counts what a converge wrote.
type applyCounts struct {
	created, updated, suspended atomic.Int32
	firstErr                    atomic.Value
	rejectedMu                  sync.Mutex
}

// applyAll writes Users, ApplyWorkers at a time, except those held by the safety
// threshold.
func (s *Syncer) applyAll(ctx context.Context, r run, users []desiredUser, held map[string]bool, counts *applyCounts) {
	work := make(chan desiredUser)
	var wg sync.WaitGroup
	for range ApplyWorkers {
		wg.Go(func() {
			// A panic fails this run's writes, not the operator.
			safety.Contain(func(c *safety.Crash) {
				counts.firstErr.CompareAndSwap(nil, c)
				for range work {
				}
			}, func() { s.applyEach(ctx, r, work, counts) })
		})
	}
	for _, d := range users {
		if !held[d.name] {
			work <- d
		}
	}
	close(work)
	wg.Wait()
}

// applyEach writes the Users it takes from work, counting what it wrote.
func (s *Syncer) applyEach(ctx context.Context, r run, work <-chan desiredUser, counts *applyCounts) {
	for d := range work {
		changed, err := s.applyUser(ctx, d, r.existing[d.name], r.finalizers)
		var rejected *connectors.RejectedError
		switch {
		case errors.As(err, &rejected):
			counts.rejectedMu.Lock()
			r.skips[d.recordID] = skip{rejected.Reason, rejected.Detail}
			counts.rejectedMu.Unlock()
		case err != nil:
			counts.firstErr.CompareAndSwap(nil, err)
		case changed && r.existing[d.name] == nil:
			counts.created.Add(1)
		case changed:
			counts.updated.Add(1)
		}
		s.inStep.Add(1)
		if changed && r.suspensions[d.name] {
			counts.suspended.Add(1)
		}
	}
}

// managersFirst splits Users into waves by how deep each is in the management chain
// among them, so that a manager exists before the Users who report to it: apps then get
// each account created with its manager, instead of created and updated.
func managersFirst(users []desiredUser) [][]desiredUser {
	managerOf := make(map[string]string, len(users))
	for _, d := range users {
		managerOf[d.name] = d.manager
	}
	depths := make(map[string]int, len(users))
	visiting := map[string]bool{}
	var depth func(name string) int
	depth = func(name string) int {
		if d, ok := depths[name]; ok {
			return d
		}
		if visiting[name] {
			return 0 // a management cycle
		}
		visiting[name] = true
		d := 0
		if m := managerOf[name]; m != "" {
			if _, inRun := managerOf[m]; inRun {
				d = depth(m) + 1
			}
		}
		depths[name] = d
		return d
	}
	var waves [][]desiredUser
	for _, u := range users {
		d := depth(u.name)
		for len(waves) <= d {
			waves = append(waves, nil)
		}
		waves[d] = append(waves[d], u)
	}
	return waves
}

// owned lists the Users this DirectorySync wrote.
func (s *Syncer) owned(ctx context.Context) ([]identityv1alpha1.User, error) {
	var list identityv1alpha1.UserList
	err := s.client.List(ctx, &list, client.InNamespace(s.cfg.Namespace), client.MatchingLabels{LabelDirectorySync: s.cfg.Name})
	return list.Items, err
}

// ownedOf reads the Users this DirectorySync wrote for some records, one at a time: a
// change to a few records need not list them all.
func (s *Syncer) ownedOf(ctx context.Context, ids []string) ([]identityv1alpha1.User, error) {
	var out []identityv1alpha1.User
	for _, id := range ids {
		s.mu.Lock()
		name, ok := s.names.of(s.cfg.Name, id)
		s.mu.Unlock()
		if !ok {
			continue
		}
		u := identityv1alpha1.User{}
		err := s.client.Get(ctx, client.ObjectKey{Namespace: s.cfg.Namespace, Name: name}, &u)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, err
		case u.Labels[LabelDirectorySync] == s.cfg.Name:
			out = append(out, u)
		}
	}
	return out, nil
}

// plan plans a converge from what the syncer holds, then counts what the plan skipped,
// notes the suspensions it holds against the source and schedules the next deletion.
func (s *Syncer) plan(ids []string, full bool, vanishedIDs []string, owned []identityv1alpha1.User) run {
	s.mu.Lock()
	defer s.mu.Unlock()
	if full {
		s.names = newNames()
	}
	src := sourceView{records: s.records, refs: s.refs, members: s.members}
	r := plan(&s.cfg, src, s.names, planInput{ids: ids, vanished: vanishedIDs, owned: owned, full: full, now: s.now()})
	for _, id := range r.skipped {
		s.countSkipLocked(id, r.skips[id])
	}
	for _, d := range r.desired {
		s.noteHeldSuspensionLocked(d)
	}
	if full {
		s.nextDelete = time.Time{}
	}
	if !r.nextDelete.IsZero() {
		s.scheduleDeletionLocked(r.nextDelete)
	}
	if s.cfg.Finalizers != nil {
		r.finalizers = s.cfg.Finalizers()
	}
	return r
}

func (s *Syncer) skipLocked(id string, sk skip) {
	s.names.problem(id, sk.reason, sk.detail)
	s.countSkipLocked(id, sk)
}

// countSkipLocked counts a skipped record in the status.
func (s *Syncer) countSkipLocked(id string, sk skip) {
	s.status.Counts.Skipped++
	r := s.skipped[sk.reason]
	if r == nil {
		r = &identityv1alpha1.SkipReason{Reason: sk.reason}
		s.skipped[sk.reason] = r
	}
	r.Count++
	r.Example = truncate(id, 256)
	s.log.V(1).Info("Skipped a directory record", "directorysync", s.cfg.Name, "record", id, "reason", sk.reason, "detail", sk.detail)
}

// checkSafety holds the run's suspensions and deletions when, with those made within
// the safety window, they are more than the threshold allows (or the source came back
// empty) and the plan is not approved. It returns the Users held.
func (s *Syncer) checkSafety(r run, owned int, empty bool) map[string]bool {
	names := make([]string, 0, len(r.suspensions))
	for n := range r.suspensions {
		names = append(names, n)
	}
	sort.Strings(names)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(names) == 0 {
		if r.full {
			s.status.Blocked, s.status.BlockedMessage, s.status.PlanID = false, "", ""
		}
		return nil
	}
	now := s.now()
	made := s.window.Count(now)
	id := safety.PlanID(names)
	if !empty && !safety.Exceeds(made+len(names), owned+made, s.cfg.MaxCount, s.cfg.MaxPercent) || s.cfg.ApprovedPlan == id {
		if s.cfg.ApprovedPlan == id {
			s.log.Info("Approved directory sync plan applied", "directorysync", s.cfg.Name, "plan", id, "approvedBy", s.cfg.PlanApprover, "users", len(names))
		}
		s.status.Blocked, s.status.BlockedMessage, s.status.PlanID = false, "", ""
		s.window.Add(now, len(names))
		return nil
	}
	s.status.Blocked, s.status.PlanID = true, id
	why := fmt.Sprintf("with %d already suspended or deleted in the last %s, over the safety threshold", made, s.window.Span())
	if empty {
		why = "because the source returned no record at all"
	}
	s.status.BlockedMessage = fmt.Sprintf("this sync would suspend or delete %d of %d Users, %s; %d are held and nothing of it was applied. "+
		"Check the source and the filter, then approve it with: %s",
		len(names), owned, why, len(names), fmt.Sprintf(identityv1alpha1.ApproveCommand, "directorysync", s.cfg.Name, id))
	if s.heldPlan != id {
		s.log.Info("Directory sync blocked by the safety threshold", "directorysync", s.cfg.Name, "plan", id, "users", len(names), "madeInWindow", made)
		s.heldPlan = id
	}
	if made > 0 {
		s.scheduleDeletionLocked(s.window.NextExpiry()) // look again when those made stop counting
	}
	held := make(map[string]bool, len(names))
	for _, n := range names {
		held[n] = true
	}
	return held
}

// applyUser writes one User with server-side apply, unless it is already as desired,
// with these finalizers beside the main one. It reports whether it wrote.
func (s *Syncer) applyUser(ctx context.Context, d desiredUser, existing *identityv1alpha1.User, finalizers []string) (bool, error) {
	if existing != nil && existing.DeletionTimestamp != nil {
		return false, nil
	}
	if existing != nil && upToDate(d.object, existing) {
		return false, nil
	}
	obj := d.object
	if len(finalizers) > 0 {
		obj = obj.DeepCopy()
		obj.SetFinalizers(append([]string{identityv1alpha1.Finalizer}, finalizers...))
	}
	lock := &s.stripe[stripeOf(d.recordID)]
	lock.Lock()
	defer lock.Unlock()
	err := s.apply(ctx, obj, s.fieldOwner, client.ForceOwnership)
	if apierrors.IsInvalid(err) {
		s.skip(d.recordID, skip{"Rejected", err.Error()})
		return false, &connectors.RejectedError{Reason: "Rejected", Detail: err.Error()}
	}
	if err != nil {
		return false, fmt.Errorf("writing User %s: %w", d.name, err)
	}
	if existing != nil && existing.Annotations[annotationVanished] != "" {
		// The record is back: let go of what marked the User as vanished.
		release := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": identityv1alpha1.GroupVersion.String(), "kind": "User",
			"metadata": map[string]any{"name": d.name, "namespace": s.cfg.Namespace}}}
		if err := s.apply(ctx, release, s.vanishOwner); err != nil {
			return true, fmt.Errorf("releasing User %s: %w", d.name, err)
		}
	}
	return true, nil
}

// vanish suspends a User whose record left the source, under a field manager of its
// own, so that what the source said of the User is kept.
func (s *Syncer) vanish(ctx context.Context, u *identityv1alpha1.User) error {
	since := u.Annotations[AnnotationInactive]
	if since == "" {
		since = s.now().UTC().Format(time.RFC3339)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": identityv1alpha1.GroupVersion.String(), "kind": "User",
		"metadata": map[string]any{"name": u.Name, "namespace": u.Namespace,
			"annotations": map[string]any{annotationVanished: "true", AnnotationInactive: since}},
		"spec": map[string]any{"state": string(identityv1alpha1.UserStateSuspended)},
	}}
	err := s.apply(ctx, obj, s.vanishOwner, client.ForceOwnership)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("suspending User %s: %w", u.Name, err)
	}
	return nil
}

// apply server-side applies obj as owner and has the API server answer with obj's
// metadata alone: the syncer reads nothing of the answer, and encoding and decoding the
// whole object in it cost the API server and the syncer more than the write.
func (s *Syncer) apply(ctx context.Context, obj *unstructured.Unstructured, owner string, opts ...client.PatchOption) error {
	data, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	answer := &metav1.PartialObjectMetadata{}
	answer.SetGroupVersionKind(obj.GroupVersionKind())
	answer.Namespace, answer.Name = obj.GetNamespace(), obj.GetName()
	return s.client.Patch(ctx, answer, client.RawPatch(types.ApplyPatchType, data), append(opts, client.FieldOwner(owner))...)
}

// upToDate reports whether a User already has everything d would apply.
func upToDate(desired *unstructured.Unstructured, u *identityv1alpha1.User) bool {
	if u.Annotations[AnnotationAppliedHash] != desired.GetAnnotations()[AnnotationAppliedHash] {
		return false
	}
	have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(u)
	if err != nil {
		return false
	}
	wantSpec, _ := desired.Object["spec"].(map[string]any)
	haveSpec, _ := have["spec"].(map[string]any)
	for k, v := range wantSpec {
		if !connectors.Equivalent(normalize(v), normalize(haveSpec[k]), false) {
			return false
		}
	}
	for k, v := range desired.GetLabels() {
		if u.Labels[k] != v {
			return false
		}
	}
	return true
}

// normalize makes typed and decoded values comparable (int64 and float64, []string).
func normalize(v any) any {
	switch t := v.(type) {
	case []string:
		out := make([]any, len(t))
		for i, s := range t {
			out[i] = s
		}
		return out
	case int64:
		return float64(t)
	}
	return v
}

func stripeOf(id string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % 64)
}

// mirrorGroups keeps one Role per group when the DirectorySync asks for it, and none
// otherwise.
func (s *Syncer) mirrorGroups(ctx context.Context) error {
	s.mu.Lock()
	prefix := s.cfg.MirrorPrefix
	names := map[string]bool{}
	for _, g := range s.groups {
		if g.Name != "" {
			names[g.Name] = true
		}
	}
	s.mu.Unlock()
	var roles identityv1alpha1.RoleList
	if err := s.client.List(ctx, &roles, client.InNamespace(s.cfg.Namespace), client.MatchingLabels{LabelDirectorySync: s.cfg.Name}); err != nil {
		return err
	}
	existing := map[string]*identityv1alpha1.Role{}
	for i := range roles.Items {
		existing[roles.Items[i].Name] = &roles.Items[i]
	}
	want := map[string]bool{}
	if prefix != nil {
		sorted := make([]string, 0, len(names))
		for group := range names {
			sorted = append(sorted, group)
		}
		sort.Strings(sorted)
		for _, group := range sorted {
			name := roleName(*prefix, group, want)
			want[name] = true
			spec := map[string]any{
				"description": truncate("Everyone in the directory group "+group, 1024),
				"members":     map[string]any{"groups": []any{group}},
			}
			obj := newObject(s.cfg.Namespace, "Role", name, map[string]any{LabelDirectorySync: s.cfg.Name}, map[string]any{}, spec)
			if r := existing[name]; r != nil && r.Annotations[AnnotationAppliedHash] == obj.GetAnnotations()[AnnotationAppliedHash] {
				continue
			}
			if err := s.apply(ctx, obj, s.fieldOwner, client.ForceOwnership); err != nil {
				return fmt.Errorf("writing Role %s: %w", name, err)
			}
		}
	}
	for name, r := range existing {
		if !want[name] {
			if err := s.client.Delete(ctx, r); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	return nil
}

// roleName is the name of the Role mirroring a group: the prefix and the group's name
// made valid, with a hash of the name when that is empty, too long or already taken.
func roleName(prefix, group string, taken map[string]bool) string {
	clean := cleanName(group)
	name := prefix + clean
	if clean == "" || len(name) > 253 || taken[name] {
		sum := sha256.Sum256([]byte(group))
		name = strings.Trim(prefix+truncate(clean, 200), "-.") + "-" + hex.EncodeToString(sum[:4])
	}
	return name
}
