package ldap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rosterhq/roster/connectors"
)

const (
	// memberChunk is the most member values one modify carries: Active Directory
	// refuses much larger ones.
	memberChunk = 5000
	// oidPermissiveModify makes adding a value that is there, or deleting one that is
	// not, a success, so that member changes are idempotent (OpenLDAP and AD).
	oidPermissiveModify = "1.2.840.113556.1.4.1413"
	// maxMembers bounds what Roster reads of one group's members.
	maxMembers = 1_000_000
)

// ListGroups returns one page of the groups below groupsDN, members as account ids.
// Members that are not accounts Roster has listed (other groups, entries outside
// usersDN) are left out.
func (t *Target) ListGroups(ctx context.Context, cursor string) (connectors.GroupPage, error) {
	if t.groupsDN == "" {
		return connectors.GroupPage{}, nil
	}
	var page connectors.GroupPage
	var failed error
	next, err := t.page(ctx, cursor, t.groupsDN, t.shape.groupFilter, []string{t.shape.id, "cn", "member"}, func(conn *goldap.Conn, e *goldap.Entry) {
		members, err := t.members(conn, e)
		if err != nil {
			failed = err
			return
		}
		page.Groups = append(page.Groups, t.group(e, members))
	})
	if err == nil {
		err = failed
	}
	page.Next = next
	return page, err
}

// group translates a group entry with its member DNs.
func (t *Target) group(e *goldap.Entry, memberDNs []string) connectors.Group {
	g := connectors.Group{ID: t.entryID(e), DisplayName: e.GetAttributeValue("cn")}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byID[g.ID] = &known{dn: e.DN}
	for _, dn := range memberDNs {
		if id, ok := t.byDN[normalizeDN(dn)]; ok {
			g.Members = append(g.Members, id)
		}
	}
	return g
}

// members reads a group's member DNs, asking for the further ranges Active Directory
// splits a large group's members into ("member;range=0-1499").
func (t *Target) members(conn *goldap.Conn, e *goldap.Entry) ([]string, error) {
	var out []string
	next := 0
	for attr := e; ; {
		more := ""
		for _, a := range attr.Attributes {
			name, rng, ranged := strings.Cut(a.Name, ";range=")
			if !strings.EqualFold(name, "member") {
				continue
			}
			out = append(out, a.Values...)
			if ranged {
				// A range that does not move forward would never end: stop there.
				if _, end, _ := strings.Cut(rng, "-"); end != "*" {
					if last, err := strconv.Atoi(end); err == nil && last >= next && len(a.Values) > 0 {
						next = last + 1
						more = fmt.Sprintf("member;range=%d-*", next)
					}
				}
			}
		}
		if more == "" || len(out) > maxMembers {
			return out, nil
		}
		res, err := conn.Search(goldap.NewSearchRequest(e.DN, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 30, false, "(objectClass=*)", []string{more}, nil))
		if err != nil {
			return nil, classify("reading the members of "+e.DN, err)
		}
		if len(res.Entries) != 1 {
			return out, nil
		}
		attr = res.Entries[0]
	}
}

// EnsureGroup returns the group with this name below groupsDN, adding it when there is
// none: a groupOfNames (which must have a member, so it gets the empty DN as one) or an
// Active Directory group of groupType.
func (t *Target) EnsureGroup(ctx context.Context, displayName string) (connectors.Group, error) {
	if t.groupsDN == "" {
		return connectors.Group{}, &connectors.PermanentError{Message: "set groupsDN to manage groups", Err: connectors.ErrUnsupported}
	}
	var g connectors.Group
	err := t.pool.do(ctx, func(conn *goldap.Conn) error {
		found, err := t.findGroup(conn, displayName)
		if err == nil {
			g = found
			return nil
		}
		if !errors.Is(err, connectors.ErrNotFound) {
			return err
		}
		dn := "cn=" + goldap.EscapeDN(displayName) + "," + t.groupsDN
		req := goldap.NewAddRequest(dn, nil)
		req.Attribute("objectClass", t.shape.groupClasses)
		req.Attribute("cn", []string{displayName})
		if t.ad {
			req.Attribute("groupType", []string{strconv.Itoa(int(t.groupType))})
			if len([]rune(displayName)) <= 256 {
				req.Attribute("sAMAccountName", []string{displayName})
			}
		} else {
			req.Attribute("member", []string{""})
		}
		if err := conn.Add(req); err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultEntryAlreadyExists) {
			return t.explain("creating the group "+dn, err)
		}
		g, err = t.findGroup(conn, displayName)
		return err
	})
	return g, err
}

func (t *Target) findGroup(conn *goldap.Conn, name string) (connectors.Group, error) {
	filter := "(&" + t.shape.groupFilter + "(cn=" + goldap.EscapeFilter(name) + "))"
	res, err := conn.Search(goldap.NewSearchRequest(t.groupsDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 2, 30, false, filter, []string{t.shape.id, "cn", "member"}, nil))
	if err != nil {
		return connectors.Group{}, classify("looking up the group "+name, err)
	}
	for _, e := range res.Entries {
		if strings.EqualFold(e.GetAttributeValue("cn"), name) {
			members, err := t.members(conn, e)
			if err != nil {
				return connectors.Group{}, err
			}
			return t.group(e, members), nil
		}
	}
	return connectors.Group{}, fmt.Errorf("group %s: %w", name, connectors.ErrNotFound)
}

// ChangeMembers adds and removes members in one modify per memberChunk values. A
// groupOfNames keeps the empty DN as its member while it has no other.
func (t *Target) ChangeMembers(ctx context.Context, group connectors.Group, add, remove []string) error {
	return t.pool.do(ctx, func(conn *goldap.Conn) error {
		g, err := t.find(conn, t.groupsDN, group.ID)
		if err != nil {
			return err
		}
		addDNs, err := t.dns(conn, add)
		if err != nil {
			return err
		}
		removeDNs, err := t.dns(conn, remove)
		if err != nil {
			return err
		}
		remaining := len(group.Members) + len(addDNs) - len(removeDNs)
		for len(addDNs) > 0 || len(removeDNs) > 0 {
			req := goldap.NewModifyRequest(g.dn, []goldap.Control{goldap.NewControlString(oidPermissiveModify, false, "")})
			n := min(len(addDNs), memberChunk)
			if n > 0 {
				req.Add("member", addDNs[:n])
				if !t.ad {
					req.Delete("member", []string{""})
				}
				addDNs = addDNs[n:]
			}
			if m := min(len(removeDNs), memberChunk-n); m > 0 {
				if !t.ad && remaining <= 0 && len(addDNs) == 0 && m == len(removeDNs) {
					req.Add("member", []string{""})
				}
				req.Delete("member", removeDNs[:m])
				removeDNs = removeDNs[m:]
			}
			if err := conn.Modify(req); err != nil {
				return t.explain("changing the members of "+g.dn, err)
			}
		}
		return nil
	})
}

// dns are the DNs of accounts by id; an account that no longer exists is skipped.
func (t *Target) dns(conn *goldap.Conn, ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		k, err := t.find(conn, t.usersDN, id)
		if errors.Is(err, connectors.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, k.dn)
	}
	return out, nil
}
