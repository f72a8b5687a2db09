package directory

import (
	"fmt"
	"sort"
	"strings"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Problems with source records, for the DirectorySync's status.
const (
	ProblemUnknownManager    = "UnknownManager"
	ProblemDuplicateUserName = "DuplicateUserName"
	ProblemNameCollision     = "NameCollision"
	maxProblemsListed        = 50
)

// names knows the User name of each record: the name its User already has (written
// under an earlier naming, or taken another way), else objectName, else, when another
// record's User holds that name, the hashed form. It also keeps each record's problems.
type names struct {
	byRecord map[string]string // record id → User name
	owner    map[string]string // User name → record id
	// problems by record id, then reason → message.
	problems map[string]map[string]string
	// userNames: record id → lower-cased userName; holder: the record that holds a
	// userName alone, shared: the records of a userName more than one holds. Nearly
	// every userName has one holder, kept without a set of its own.
	userNames map[string]string
	holder    map[string]string
	shared    map[string]map[string]bool
}

func newNames() names {
	return names{byRecord: map[string]string{}, owner: map[string]string{}, problems: map[string]map[string]string{},
		userNames: map[string]string{}, holder: map[string]string{}, shared: map[string]map[string]bool{}}
}

// learn records the name of an existing User written from a record.
func (n names) learn(u *identityv1alpha1.User) {
	if id := u.Annotations[AnnotationSourceID]; id != "" {
		n.byRecord[id] = u.Name
		n.owner[u.Name] = id
	}
}

// of is the User name of a record, and false when none can be given to it.
func (n names) of(prefix, id string) (string, bool) {
	if name, ok := n.byRecord[id]; ok {
		return name, true
	}
	name := objectName(prefix, id)
	if owner, taken := n.owner[name]; taken && owner != id {
		name = hashedName(prefix, cleanName(id), id)
		if owner, taken := n.owner[name]; taken && owner != id {
			return "", false
		}
	}
	n.byRecord[id], n.owner[name] = name, id
	return name, true
}

// setUserName records the userName a record's User has, to tell duplicates.
func (n names) setUserName(id, userName string) {
	if old, ok := n.userNames[id]; ok {
		n.release(old, id)
		delete(n.userNames, id)
	}
	if userName == "" {
		return
	}
	lower := strings.ToLower(userName)
	n.userNames[id] = lower
	switch other, held := n.holder[lower]; {
	case n.shared[lower] != nil:
		n.shared[lower][id] = true
	case held && other != id:
		n.shared[lower] = map[string]bool{other: true, id: true}
		delete(n.holder, lower)
	default:
		n.holder[lower] = id
	}
}

// release takes a record off the holders of a lower-cased userName.
func (n names) release(lower, id string) {
	ids := n.shared[lower]
	if ids == nil {
		if n.holder[lower] == id {
			delete(n.holder, lower)
		}
		return
	}
	delete(ids, id)
	if len(ids) == 1 {
		for last := range ids {
			n.holder[lower] = last
		}
		delete(n.shared, lower)
	}
}

// problem records a problem with a record; reset clears a record's before it is
// looked at again.
func (n names) problem(id, reason, message string) {
	if n.problems[id] == nil {
		n.problems[id] = map[string]string{}
	}
	n.problems[id][reason] = truncate(message, 512)
}

func (n names) reset(id string) { delete(n.problems, id) }

// report lists the problems, duplicates included, by reason and record: the first
// maxProblemsListed, and how many there are.
func (n names) report() ([]identityv1alpha1.RecordProblem, int) {
	var all []identityv1alpha1.RecordProblem
	for id, reasons := range n.problems {
		for reason, msg := range reasons {
			all = append(all, identityv1alpha1.RecordProblem{Reason: reason, Record: truncate(id, 256), Message: msg})
		}
	}
	for userName, ids := range n.shared {
		sorted := make([]string, 0, len(ids))
		for id := range ids {
			sorted = append(sorted, id)
		}
		sort.Strings(sorted)
		for _, id := range sorted {
			all = append(all, identityv1alpha1.RecordProblem{Reason: ProblemDuplicateUserName, Record: truncate(id, 256),
				Message: truncate(fmt.Sprintf("userName %q (ignoring letter case) is also the userName of records %s; only the oldest User is provisioned",
					userName, strings.Join(sorted, ", ")), 512)})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Reason != all[j].Reason {
			return all[i].Reason < all[j].Reason
		}
		return all[i].Record < all[j].Record
	})
	total := len(all)
	if total > maxProblemsListed {
		all = all[:maxProblemsListed]
	}
	return all, total
}
