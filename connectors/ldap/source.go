package ldap

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"

	goldap "github.com/go-ldap/ldap/v3"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// OIDs of the server features Roster looks for in the root DSE.
const (
	oidSyncRepl = "1.3.6.1.4.1.4203.1.9.1.1"
	oidDirSync  = "1.2.840.113556.1.4.841"
)

// flavor holds the defaults of one kind of directory.
type flavor struct {
	userFilter, groupFilter string
	id, userName            string
	groupName, groupMember  string
	changed                 string // the attribute a polling sync compares
	binaryID                bool
	disabled                func(*goldap.Entry) bool
}

var flavors = map[identityv1alpha1.LDAPFlavor]flavor{
	identityv1alpha1.LDAPFlavorOpenLDAP: {
		userFilter: "(objectClass=inetOrgPerson)", groupFilter: "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
		id: "entryUUID", userName: "uid", groupName: "cn", groupMember: "member", changed: "modifyTimestamp",
		// The ppolicy overlay locks an account with pwdAccountLockedTime.
		disabled: func(e *goldap.Entry) bool { return e.GetAttributeValue("pwdAccountLockedTime") != "" },
	},
	identityv1alpha1.LDAPFlavorActiveDirectory: {
		userFilter: "(&(objectCategory=person)(objectClass=user))", groupFilter: "(objectClass=group)",
		id: "objectGUID", userName: "sAMAccountName", groupName: "cn", groupMember: "member", changed: "whenChanged",
		binaryID: true,
		// userAccountControl bit 2: ACCOUNTDISABLE.
		disabled: func(e *goldap.Entry) bool {
			uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
			return uac&2 != 0
		},
	},
}

// Source reads one directory.
type Source struct {
	dialer      *dialer
	baseDN      string
	userFilter  string
	groupFilter string
	pageSize    uint32
	f           flavor
	mode        identityv1alpha1.LDAPIncrementalMode

	mu    sync.Mutex
	index map[string]string // lower-cased DN → id, users and groups
}

var (
	_ connectors.IncrementalSource = (*Source)(nil)
	_ connectors.WatchingSource    = (*Source)(nil)
)

// NewFactory returns the SourceFactory for DirectorySyncs with an ldap block.
func NewFactory() connectors.SourceFactory {
	return func(ctx context.Context, sync *identityv1alpha1.DirectorySync, secrets connectors.SecretReader) (connectors.Source, error) {
		spec := sync.Spec.LDAP
		if spec == nil {
			return nil, &connectors.PermanentError{Message: "the DirectorySync has no ldap block"}
		}
		d, err := newDialer(ctx, spec.LDAPConnection, secrets)
		if err != nil {
			return nil, err
		}
		return New(d, spec), nil
	}
}

// New returns a Source for an ldap block.
func New(d *dialer, spec *identityv1alpha1.LDAPSource) *Source {
	f := flavors[spec.Flavor]
	if f.userFilter == "" {
		f = flavors[identityv1alpha1.LDAPFlavorOpenLDAP]
	}
	if a := spec.Attributes; a != nil {
		f.id = or(a.ID, f.id)
		f.userName = or(a.UserName, f.userName)
		f.groupName = or(a.GroupName, f.groupName)
		f.groupMember = or(a.GroupMember, f.groupMember)
	}
	s := &Source{
		dialer: d, baseDN: spec.BaseDN, f: f, mode: spec.Incremental,
		userFilter: or(spec.UserFilter, f.userFilter), groupFilter: or(spec.GroupFilter, f.groupFilter),
		pageSize: uint32(max(1, spec.PageSize)), index: map[string]string{},
	}
	if spec.PageSize == 0 {
		s.pageSize = 500
	}
	return s
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Validate binds and reads the base entry.
func (s *Source) Validate(ctx context.Context) error {
	conn, closeConn, err := s.dialer.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	_, err = conn.Search(goldap.NewSearchRequest(s.baseDN, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 30, false, "(objectClass=*)", []string{"1.1"}, nil))
	if err != nil {
		return classify("reading "+s.baseDN, err)
	}
	return nil
}

// Snapshot reads every user and group with paged searches.
func (s *Source) Snapshot(ctx context.Context) (connectors.Snapshot, error) {
	conn, closeConn, err := s.dialer.dial(ctx)
	if err != nil {
		return connectors.Snapshot{}, err
	}
	defer closeConn()
	// With DirSync the watermark is its cookie, taken before the searches so that a
	// change made while they run is reported again rather than lost.
	var cookie string
	if s.mode != identityv1alpha1.IncrementalNone && s.useDirSync(conn) {
		if cookie, err = s.dirSyncCookie(conn); err != nil {
			return connectors.Snapshot{}, err
		}
	}
	users, err := s.search(conn, s.userFilter)
	if err != nil {
		return connectors.Snapshot{}, err
	}
	groups, err := s.search(conn, s.groupFilter)
	if err != nil {
		return connectors.Snapshot{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index = map[string]string{}
	for _, e := range append(users, groups...) {
		s.index[normalizeDN(e.DN)] = s.entryID(e)
	}
	snap := connectors.Snapshot{Watermark: latest(append(users, groups...), s.f.changed)}
	if cookie != "" {
		snap.Watermark = cookie
	}
	for _, e := range users {
		snap.Records = append(snap.Records, s.recordLocked(e))
	}
	for _, e := range groups {
		snap.Groups = append(snap.Groups, s.groupLocked(e))
	}
	return snap, ctx.Err()
}

func (s *Source) search(conn *goldap.Conn, filter string) ([]*goldap.Entry, error) {
	req := goldap.NewSearchRequest(s.baseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, filter, []string{"*", "+"}, nil)
	res, err := conn.SearchWithPaging(req, s.pageSize)
	if err != nil {
		return nil, classify("searching "+filter, err)
	}
	return res.Entries, nil
}

// entryID is an entry's immutable id as a string.
func (s *Source) entryID(e *goldap.Entry) string {
	if s.f.binaryID {
		return guid(e.GetRawAttributeValue(s.f.id))
	}
	return e.GetAttributeValue(s.f.id)
}

// recordLocked turns a user entry into a record: every attribute by name (its first
// value), all values under "all", and id, dn, userName and disabled.
func (s *Source) recordLocked(e *goldap.Entry) connectors.Record {
	attrs := map[string]any{}
	all := map[string]any{}
	for _, a := range e.Attributes {
		if len(a.Values) == 0 || a.Name == s.f.id && s.f.binaryID {
			continue
		}
		attrs[a.Name] = a.Values[0]
		values := make([]any, len(a.Values))
		for i, v := range a.Values {
			values[i] = v
		}
		all[a.Name] = values
	}
	id := s.entryID(e)
	disabled := s.f.disabled(e)
	attrs["all"], attrs["id"], attrs["dn"], attrs["disabled"] = all, id, e.DN, disabled
	attrs["userName"] = e.GetAttributeValue(s.f.userName)
	var groups []string
	for _, dn := range e.GetAttributeValues("memberOf") {
		if gid, ok := s.index[normalizeDN(dn)]; ok {
			groups = append(groups, gid)
		}
	}
	return connectors.Record{ID: id, Attributes: attrs, Disabled: disabled, Groups: groups}
}

// groupLocked turns a group entry into a group whose members are ids.
func (s *Source) groupLocked(e *goldap.Entry) connectors.SourceGroup {
	g := connectors.SourceGroup{ID: s.entryID(e), Name: e.GetAttributeValue(s.f.groupName)}
	for _, dn := range e.GetAttributeValues(s.f.groupMember) {
		if id, ok := s.index[normalizeDN(dn)]; ok {
			g.Members = append(g.Members, id)
		}
	}
	return g
}

// latest is the greatest value of a timestamp attribute, a watermark for polling.
func latest(entries []*goldap.Entry, attr string) string {
	max := ""
	for _, e := range entries {
		if v := e.GetAttributeValue(attr); v > max {
			max = v
		}
	}
	return max
}

func normalizeDN(dn string) string {
	parsed, err := goldap.ParseDN(dn)
	if err != nil {
		return strings.ToLower(strings.ReplaceAll(dn, " ", ""))
	}
	parts := make([]string, 0, len(parsed.RDNs))
	for _, rdn := range parsed.RDNs {
		var attrs []string
		for _, a := range rdn.Attributes {
			attrs = append(attrs, strings.ToLower(a.Type)+"="+strings.ToLower(a.Value))
		}
		parts = append(parts, strings.Join(attrs, "+"))
	}
	return strings.Join(parts, ",")
}

// guid formats an Active Directory objectGUID (mixed-endian) as a GUID string.
func guid(b []byte) string {
	if len(b) != 16 {
		return hex.EncodeToString(b)
	}
	return fmt.Sprintf("%08x-%04x-%04x-%s-%s",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]),
		hex.EncodeToString(b[8:10]), hex.EncodeToString(b[10:16]))
}

// guidBytes is the inverse of guid: the 16 bytes Active Directory stores.
func guidBytes(s string) ([]byte, error) {
	h := strings.ReplaceAll(s, "-", "")
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != 16 || len(s) != 36 {
		return nil, fmt.Errorf("%q is not an objectGUID", s)
	}
	out := make([]byte, 16)
	binary.LittleEndian.PutUint32(out[0:4], binary.BigEndian.Uint32(raw[0:4]))
	binary.LittleEndian.PutUint16(out[4:6], binary.BigEndian.Uint16(raw[4:6]))
	binary.LittleEndian.PutUint16(out[6:8], binary.BigEndian.Uint16(raw[6:8]))
	copy(out[8:], raw[8:])
	return out, nil
}
