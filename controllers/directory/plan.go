package directory

import (
	"fmt"
	"sort"
	"strings"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// sourceView is what the syncer holds of its source when it plans: the records, the
// references to them (id, dn, userName, email), and their expanded groups.
type sourceView struct {
	records map[string]connectors.Record
	refs    map[string]string
	members memberships
}

// planInput is what one converge is planned from.
type planInput struct {
	ids      []string // the records to bring in step
	vanished []string // records that left the source since the last change
	// owned are the Users the DirectorySync wrote: all of them for a full sync, else
	// those of ids and vanished.
	owned []identityv1alpha1.User
	full  bool // a full sync speaks for the whole source
	now   time.Time
}

// plan maps records to the Users to write and finds the Users to suspend and to delete,
// by the DirectorySync's policy. It reads cfg, src and in; of the syncer's state it
// updates only names, the index of each record's User name and problems.
func plan(cfg *Config, src sourceView, names names, in planInput) run {
	r := run{existing: map[string]*identityv1alpha1.User{}, suspensions: map[string]bool{}, skips: map[string]skip{}, full: in.full}
	for i := range in.owned {
		r.existing[in.owned[i].Name] = &in.owned[i]
		names.learn(&in.owned[i])
	}
	gone := map[string]bool{} // User names whose record left the source
	for _, id := range in.vanished {
		if name, ok := names.of(cfg.Name, id); ok {
			gone[name] = true
		}
	}
	present := planRecords(cfg, src, names, in, &r, gone)
	planLeavers(cfg, src, in, &r, present, gone)
	return r
}

// planRecords maps each record to its User, skipping those that cannot be one, and
// returns the names of the Users that keep a record.
func planRecords(cfg *Config, src sourceView, names names, in planInput, r *run, gone map[string]bool) map[string]bool {
	present := map[string]bool{}
	skipped := func(id string, sk skip) {
		r.skips[id] = sk
		r.skipped = append(r.skipped, id)
		names.problem(id, sk.reason, sk.detail)
	}
	resolve := func(ref string) string {
		if id, ok := src.refs[strings.ToLower(ref)]; ok {
			name, _ := names.of(cfg.Name, id)
			return name
		}
		return ""
	}
	for _, id := range in.ids {
		rec, ok := src.records[id]
		if !ok {
			continue
		}
		names.reset(id)
		name, ok := names.of(cfg.Name, id)
		if !ok {
			skipped(id, skip{ProblemNameCollision, "no User name is free for this record: its names are taken by the Users of other records"})
			continue
		}
		vars := recordVars(rec, src.members)
		if f := cfg.Filter; f != nil {
			if keep, err := f.EvalBool(map[string]any{"record": vars}); err != nil || !keep {
				gone[name] = true // filtered out: as if it had left the source
				continue
			}
		}
		present[name] = true
		values, err := cfg.Mapping.Apply(map[string]any{"record": vars})
		if err != nil {
			skipped(id, skip{"MappingError", err.Error()})
			continue
		}
		existing := r.existing[name]
		since := in.now.UTC().Format(time.RFC3339)
		if existing != nil && existing.Annotations[AnnotationInactive] != "" {
			since = existing.Annotations[AnnotationInactive]
		}
		d, sk := buildUser(cfg, name, rec, values, resolve, since, existing)
		if sk != nil {
			skipped(id, *sk)
			names.setUserName(id, "")
			continue
		}
		names.setUserName(id, d.userName)
		if d.unknownManager != "" {
			names.problem(id, ProblemUnknownManager, fmt.Sprintf("the manager %q is no record of the source; the User is written without a manager", d.unknownManager))
		}
		if d.suspended && (existing == nil || existing.Spec.State != identityv1alpha1.UserStateSuspended) {
			r.suspensions[d.name] = true
		}
		r.desired = append(r.desired, d)
	}
	return present
}

// planLeavers finds the Users whose record left the source (or the filter), to be
// suspended or deleted by the vanished-users policy, and, on a full sync, the
// suspended Users whose deleteAfter grace has passed.
func planLeavers(cfg *Config, src sourceView, in planInput, r *run, present, gone map[string]bool) {
	for name, u := range r.existing {
		if u.DeletionTimestamp != nil {
			continue
		}
		_, kept := src.records[u.Annotations[AnnotationSourceID]]
		if (in.full && !present[name] && !kept) || gone[name] {
			if cfg.VanishedAction == identityv1alpha1.VanishedDelete {
				r.deleting = append(r.deleting, u)
				r.suspensions[name] = true
				continue
			}
			if u.Annotations[annotationVanished] == "" || u.Spec.State != identityv1alpha1.UserStateSuspended {
				r.vanishing = append(r.vanishing, u)
				r.suspensions[name] = true
				continue
			}
		}
		if in.full && cfg.DeleteAfter > 0 {
			if since, ok := date(u.Annotations[AnnotationInactive]); ok && u.Spec.State == identityv1alpha1.UserStateSuspended {
				due := since.Add(cfg.DeleteAfter)
				if !in.now.Before(due) {
					r.deleting = append(r.deleting, u)
					r.suspensions[name] = true
				} else if r.nextDelete.IsZero() || due.Before(r.nextDelete) {
					r.nextDelete = due
				}
			}
		}
	}
	sort.Slice(r.vanishing, func(i, j int) bool { return r.vanishing[i].Name < r.vanishing[j].Name })
	sort.Slice(r.deleting, func(i, j int) bool { return r.deleting[i].Name < r.deleting[j].Name })
}

// recordVars is a record as CEL sees it: its attributes, id, expanded group names and
// disabled.
func recordVars(r connectors.Record, members memberships) map[string]any {
	vars := make(map[string]any, len(r.Attributes)+3)
	for k, v := range r.Attributes {
		vars[k] = v
	}
	groups := members.expanded[r.ID]
	list := make([]any, len(groups))
	for i, g := range groups {
		list[i] = g
	}
	vars["id"], vars["groups"], vars["disabled"] = r.ID, list, r.Disabled
	return vars
}
