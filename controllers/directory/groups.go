package directory

import (
	"sort"

	"github.com/rosterhq/roster/connectors"
)

// memberships knows, for every record, the groups it is in directly and through nested
// groups.
type memberships struct {
	expanded map[string][]string // record id → group names, sorted
	nested   map[string]int      // record id → memberships only nesting gave
	parents  map[string][]string // member id (record or group) → ids of the groups it is in
}

// expand computes memberships from groups (members may be records or groups) and the
// records' own group lists. Cycles are harmless.
func expand(records map[string]connectors.Record, groups map[string]connectors.SourceGroup) memberships {
	m := memberships{expanded: map[string][]string{}, nested: map[string]int{}, parents: map[string][]string{}}
	for id, g := range groups {
		for _, member := range g.Members {
			m.parents[member] = append(m.parents[member], id)
		}
	}
	for id, r := range records {
		m.expandRecord(id, r, groups)
	}
	return m
}

// expandRecord computes one record's memberships, the groups being unchanged.
func (m memberships) expandRecord(id string, r connectors.Record, groups map[string]connectors.SourceGroup) {
	direct := map[string]bool{}
	for _, gid := range r.Groups {
		direct[gid] = true
	}
	for _, gid := range m.parents[id] {
		direct[gid] = true
	}
	all := map[string]bool{}
	var walk func(gid string)
	walk = func(gid string) {
		if all[gid] {
			return
		}
		all[gid] = true
		for _, p := range m.parents[gid] {
			walk(p)
		}
	}
	for gid := range direct {
		walk(gid)
	}
	names := make([]string, 0, len(all))
	for gid := range all {
		if g, ok := groups[gid]; ok && g.Name != "" {
			names = append(names, g.Name)
		}
	}
	sort.Strings(names)
	m.expanded[id] = names
	m.nested[id] = len(all) - len(direct)
}

// forget drops a record that left the source.
func (m memberships) forget(id string) {
	delete(m.expanded, id)
	delete(m.nested, id)
}
