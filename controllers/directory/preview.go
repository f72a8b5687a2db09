package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/runtime"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/mapping"
	"github.com/rosterhq/roster/controllers/safety"
)

// ErrNotRead is a preview asked of a syncer that has not read its source yet.
var ErrNotRead = errors.New("the DirectorySync has not read its source yet")

// Bounds of a preview's answer: the Users it lists, and the size of each one's patch.
const (
	MaxPreviewed    = 500
	maxPreviewPatch = 16384
)

// Preview is what a proposed mapping and filter would do to a DirectorySync's Users.
type Preview struct {
	Counts identityv1alpha1.PreviewCounts
	// Users are the first MaxPreviewed Users changed, by name.
	Users []identityv1alpha1.PreviewedUser
	// Held says why the sync would hold the suspensions and deletions; empty when it
	// would not.
	Held string
}

// Preview plans a full sync of the records the syncer holds twice, with its own
// mapping and filter and with the proposed ones, and returns what differs: the effect of
// the proposal alone, whatever the source changed since. It writes nothing and does not
// read the source.
func (s *Syncer) Preview(ctx context.Context, proposedMapping *mapping.Mappings, proposedFilter *mapping.Program) (Preview, error) {
	owned, err := s.owned(ctx)
	if err != nil {
		return Preview{}, err
	}
	s.mu.Lock()
	if !s.status.Synced && len(s.records) == 0 {
		s.mu.Unlock()
		return Preview{}, ErrNotRead
	}
	// A copy of what the syncer holds, so that planning twice does not hold up its work.
	src := sourceView{records: maps.Clone(s.records), refs: maps.Clone(s.refs), members: memberships{expanded: maps.Clone(s.members.expanded)}}
	cfg, now := s.cfg, s.now()
	made := s.window.Count(now)
	s.mu.Unlock()

	ids := slices.Sorted(maps.Keys(src.records))
	in := planInput{ids: ids, owned: owned, full: true, now: now}
	proposed := cfg
	proposed.Mapping, proposed.Filter = proposedMapping, proposedFilter
	was, will := plan(&cfg, src, newNames(), in), plan(&proposed, src, newNames(), in)
	p := compare(was, will)
	p.Counts.Records = int32(len(ids))
	taken := int(p.Counts.Suspended + p.Counts.Deleted)
	switch {
	case taken > 0 && len(will.desired)+len(will.skipped) == 0:
		p.Held = "the filter keeps no record: the sync would hold every suspension until approved"
	case taken > 0 && safety.Exceeds(made+taken, len(owned)+made, cfg.MaxCount, cfg.MaxPercent):
		p.Held = fmt.Sprintf("%d suspensions and deletions (with %d already in the window) exceed the DirectorySync's safety threshold: the sync would hold them until approved", taken, made)
	}
	return p, nil
}

// compare lists the Users whose planned writes differ between two plans of the same
// records.
func compare(was, will run) Preview {
	var p Preview
	add := func(u identityv1alpha1.PreviewedUser, count *int32) {
		*count++
		p.Users = append(p.Users, u)
	}
	before, beforeOfRecord := map[string]desiredUser{}, map[string]desiredUser{}
	for _, d := range was.desired {
		before[d.name], beforeOfRecord[d.recordID] = d, d
	}
	for _, d := range will.desired {
		u := identityv1alpha1.PreviewedUser{Name: d.name, UserName: d.userName}
		old, planned := before[d.name]
		existing := will.existing[d.name]
		switch {
		case planned:
			u.Action, u.Patch = identityv1alpha1.PreviewUpdate, mergePatch(userFields(old.object.Object), userFields(d.object.Object))
		case existing != nil:
			live, err := runtime.DefaultUnstructuredConverter.ToUnstructured(existing)
			if err != nil {
				continue
			}
			u.Action, u.Patch = identityv1alpha1.PreviewUpdate, mergePatch(userFields(live), userFields(d.object.Object))
		default:
			u.Action, u.Patch = identityv1alpha1.PreviewCreate, marshal(userFields(d.object.Object))
		}
		if u.Patch == "{}" {
			continue
		}
		if len(u.Patch) > maxPreviewPatch {
			u.Patch, u.Message = "", "the change is larger than a preview lists"
		}
		if u.Action == identityv1alpha1.PreviewCreate {
			add(u, &p.Counts.Created)
		} else {
			add(u, &p.Counts.Updated)
		}
	}
	for _, id := range will.skipped {
		if d, wasWritten := beforeOfRecord[id]; wasWritten {
			sk := will.skips[id]
			add(identityv1alpha1.PreviewedUser{Name: d.name, UserName: d.userName, Action: identityv1alpha1.PreviewSkip,
				Message: truncate(sk.reason+": "+sk.detail, 512)}, &p.Counts.Skipped)
		}
	}
	leaving := func(users []*identityv1alpha1.User) map[string]bool {
		out := map[string]bool{}
		for _, u := range users {
			out[u.Name] = true
		}
		return out
	}
	wasVanishing, wasDeleting := leaving(was.vanishing), leaving(was.deleting)
	for _, u := range will.vanishing {
		if !wasVanishing[u.Name] {
			add(identityv1alpha1.PreviewedUser{Name: u.Name, UserName: u.Spec.UserName, Action: identityv1alpha1.PreviewSuspend,
				Patch: `{"spec":{"state":"Suspended"}}`}, &p.Counts.Suspended)
		}
	}
	for _, u := range will.deleting {
		if !wasDeleting[u.Name] {
			add(identityv1alpha1.PreviewedUser{Name: u.Name, UserName: u.Spec.UserName, Action: identityv1alpha1.PreviewDelete}, &p.Counts.Deleted)
		}
	}
	slices.SortFunc(p.Users, func(a, b identityv1alpha1.PreviewedUser) int { return strings.Compare(a.Name, b.Name) })
	if len(p.Users) > MaxPreviewed {
		p.Users = p.Users[:MaxPreviewed]
	}
	return p
}

// userFields are the parts of a User that decide access: its name, labels and spec.
func userFields(obj map[string]any) map[string]any {
	meta, _ := obj["metadata"].(map[string]any)
	out := map[string]any{"metadata": map[string]any{"name": meta["name"], "labels": meta["labels"]}}
	if spec, ok := obj["spec"]; ok {
		out["spec"] = spec
	}
	return out
}

// mergePatch is the JSON merge patch from one User to another.
func mergePatch(from, to map[string]any) string {
	patch, err := jsonpatch.CreateMergePatch([]byte(marshal(from)), []byte(marshal(to)))
	if err != nil {
		return ""
	}
	return string(patch)
}

func marshal(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}
