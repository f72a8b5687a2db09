package ldap

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	goldap "github.com/go-ldap/ldap/v3"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// Target provisions accounts as entries of OpenLDAP or Active Directory, and manages
// the groups under groupsDN. An account's id is its entryUUID or objectGUID, which a
// rename or a move keeps.
type Target struct {
	dialer *dialer
	pool   *pool
	shape  accountShape
	ad     bool

	usersDN         string
	usersDNDepth    int
	groupsDN        string
	disabledUsersDN string
	password        identityv1alpha1.LDAPPasswordPolicy
	externalIDAttr  string
	upnSuffix       string
	groupType       int32
	lock            identityv1alpha1.LDAPLockAttribute
	native          []string // directory attributes the mapping names with ldap:
	attrs           []string // what a search for accounts asks for
	pageSize        uint32

	mu       sync.Mutex
	byID     map[string]*known
	byDN     map[string]string // normalized DN → id
	listings listings
}

// known is what the target remembers of an entry from its last read or write.
type known struct {
	dn  string
	uac int64
}

var (
	_ connectors.GroupTarget   = (*Target)(nil)
	_ connectors.DefaultMapper = (*Target)(nil)
)

// NewTargetFactory returns the TargetFactory for AppConnections with an ldap block.
func NewTargetFactory() connectors.TargetFactory {
	return func(ctx context.Context, conn *identityv1alpha1.AppConnection, secrets connectors.SecretReader) (connectors.Target, error) {
		spec := conn.Spec.LDAP
		if spec == nil {
			return nil, &connectors.PermanentError{Message: "the AppConnection has no ldap block"}
		}
		d, err := newDialer(ctx, spec.LDAPConnection, secrets)
		if err != nil {
			return nil, err
		}
		concurrency := 4
		if rl := conn.Spec.RateLimit; rl != nil && rl.MaxConcurrency != nil {
			concurrency = int(*rl.MaxConcurrency)
		}
		return NewTarget(d, spec, conn.Spec.Mapping, concurrency)
	}
}

// NewTarget returns a Target for an ldap block whose AppConnection maps with mapping,
// keeping up to concurrency bound connections.
func NewTarget(d *dialer, spec *identityv1alpha1.LDAPConnector, mapping []identityv1alpha1.ExpressionMapping, concurrency int) (*Target, error) {
	flavor := spec.Flavor
	if flavor == "" {
		flavor = identityv1alpha1.LDAPFlavorOpenLDAP
	}
	users, err := goldap.ParseDN(spec.UsersDN)
	if err != nil {
		return nil, &connectors.PermanentError{Message: fmt.Sprintf("usersDN %q is not a DN: %v", spec.UsersDN, err)}
	}
	t := &Target{
		dialer: d, pool: newPool(d, concurrency), shape: shapes[flavor], ad: flavor == identityv1alpha1.LDAPFlavorActiveDirectory,
		usersDN: spec.UsersDN, usersDNDepth: len(users.RDNs), groupsDN: spec.GroupsDN, disabledUsersDN: spec.DisabledUsersDN,
		password: spec.InitialPassword, externalIDAttr: spec.ExternalIDAttribute, upnSuffix: spec.UPNSuffix,
		groupType: -2147483646, pageSize: 500,
		lock: identityv1alpha1.LDAPLockAttribute{Name: "pwdAccountLockedTime", Value: "000001010000Z"},
		byID: map[string]*known{}, byDN: map[string]string{},
	}
	if spec.PageSize > 0 {
		t.pageSize = uint32(spec.PageSize)
	}
	if spec.GroupType != nil {
		t.groupType = *spec.GroupType
	}
	if spec.LockAttribute != nil {
		t.lock = *spec.LockAttribute
	}
	if t.password == "" {
		t.password = identityv1alpha1.LDAPPasswordNone
		if t.ad {
			t.password = identityv1alpha1.LDAPPasswordRandom
		}
	}
	if t.upnSuffix == "" {
		t.upnSuffix = domainOf(users)
	}
	if err := t.check(spec, mapping); err != nil {
		return nil, err
	}
	for _, m := range append(t.DefaultMapping(), mapping...) {
		if name, ok := strings.CutPrefix(m.Target, nativePrefix); ok && !slices.Contains(t.native, name) {
			t.native = append(t.native, name)
		}
	}
	t.attrs = t.readAttributes()
	return t, nil
}

// check refuses a configuration that could only fail later, with what to change.
func (t *Target) check(spec *identityv1alpha1.LDAPConnector, mapping []identityv1alpha1.ExpressionMapping) error {
	if t.password == identityv1alpha1.LDAPPasswordRandom && t.dialer.security == identityv1alpha1.LDAPSecurityNone {
		return &connectors.PermanentError{Message: "initialPassword Random needs an encrypted connection (ldaps:// or StartTLS): " +
			"directories refuse passwords sent in the clear; set security, or initialPassword None"}
	}
	if t.ad && t.upnSuffix == "" {
		return &connectors.PermanentError{Message: "usersDN has no DC components to derive a userPrincipalName suffix from: set upnSuffix"}
	}
	if spec.DisabledUsersDN != "" {
		disabled, err := goldap.ParseDN(spec.DisabledUsersDN)
		users, _ := goldap.ParseDN(spec.UsersDN)
		if err != nil || !users.AncestorOfFold(disabled) {
			return &connectors.PermanentError{Message: fmt.Sprintf("disabledUsersDN %q must be a DN below usersDN %q, so that Roster still lists the accounts it moved there", spec.DisabledUsersDN, spec.UsersDN)}
		}
	}
	if spec.GroupsDN != "" {
		if _, err := goldap.ParseDN(spec.GroupsDN); err != nil {
			return &connectors.PermanentError{Message: fmt.Sprintf("groupsDN %q is not a DN: %v", spec.GroupsDN, err)}
		}
	}
	var unkept []string
	for _, m := range mapping {
		if !t.keeps(m.Target) {
			unkept = append(unkept, m.Target)
		}
	}
	if len(unkept) > 0 {
		return &connectors.PermanentError{Message: fmt.Sprintf("the mapping sets %s, which this directory does not hold: map to %s, %s, %s, or a directory attribute as ldap:<name>",
			strings.Join(unkept, ", "), attrOU, connectors.AttrUserName, strings.Join(slices.Sorted(maps.Keys(t.shape.plain)), ", "))}
	}
	return nil
}

// domainOf is the DNS domain of a DN's DC components: dc=corp,dc=example → corp.example.
func domainOf(dn *goldap.DN) string {
	var parts []string
	for _, rdn := range dn.RDNs {
		for _, av := range rdn.Attributes {
			if strings.EqualFold(av.Type, "dc") {
				parts = append(parts, av.Value)
			}
		}
	}
	return strings.ToLower(strings.Join(parts, "."))
}

// Validate binds and reads usersDN (and groupsDN).
func (t *Target) Validate(ctx context.Context) (connectors.Capabilities, error) {
	err := t.pool.do(ctx, func(conn *goldap.Conn) error {
		for _, dn := range []string{t.usersDN, t.groupsDN, t.disabledUsersDN} {
			if dn == "" {
				continue
			}
			_, err := conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 30, false, "(objectClass=*)", []string{"1.1"}, nil))
			if err != nil {
				err = classify("reading "+dn, err)
				if errors.Is(err, connectors.ErrNotFound) {
					return &connectors.PermanentError{Message: dn + " does not exist in the directory"}
				}
				return err
			}
		}
		return nil
	})
	caps := connectors.Capabilities{Patch: true, Filter: true, CursorPaging: true, MaxResults: int(t.pageSize), MemberBatch: memberChunk, Groups: t.groupsDN != ""}
	return caps, err
}

// Lookup finds an account by key below usersDN.
func (t *Target) Lookup(ctx context.Context, key connectors.Key) (connectors.Account, error) {
	eq := func(attr, value string) string { return "(" + attr + "=" + goldap.EscapeFilter(value) + ")" }
	var filter string
	switch key.Kind {
	case connectors.KeyEmail:
		filter = eq("mail", key.Value)
	case connectors.KeyExternalID:
		if t.externalIDAttr == "" {
			return connectors.Account{}, &connectors.PermanentError{Message: "matching by ExternalID needs externalIDAttribute", Err: connectors.ErrUnsupported}
		}
		filter = eq(t.externalIDAttr, key.Value)
	case connectors.KeyUserName:
		filter = eq(t.shape.login, key.Value)
		if t.ad {
			upn := key.Value
			if !strings.Contains(upn, "@") {
				upn += "@" + t.upnSuffix
			}
			filter = "(|" + eq("userPrincipalName", upn) + eq("sAMAccountName", key.Value) + ")"
		}
	}
	filter = "(&" + t.shape.userFilter + filter + ")"
	var found []connectors.Account
	err := t.pool.do(ctx, func(conn *goldap.Conn) error {
		res, err := conn.Search(goldap.NewSearchRequest(t.usersDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 2, 30, false, filter, t.attrs, nil))
		if err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) {
			return classify("looking up "+key.Value, err)
		}
		for _, e := range res.Entries {
			found = append(found, t.remember(conn, e))
		}
		return nil
	})
	if err != nil {
		return connectors.Account{}, err
	}
	for _, a := range found {
		if key.Matches(a) {
			return a, nil
		}
	}
	return connectors.Account{}, connectors.ErrNotFound
}

// remember records an entry's DN and translates it.
func (t *Target) remember(conn *goldap.Conn, e *goldap.Entry) connectors.Account {
	id := t.entryID(e)
	uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
	t.mu.Lock()
	t.byID[id] = &known{dn: e.DN, uac: uac}
	t.byDN[normalizeDN(e.DN)] = id
	t.mu.Unlock()
	return t.account(e, func(dn string) string { return t.idOf(conn, dn) })
}

// idOf is the id of the entry at dn, read from the directory the first time.
func (t *Target) idOf(conn *goldap.Conn, dn string) string {
	t.mu.Lock()
	id, ok := t.byDN[normalizeDN(dn)]
	t.mu.Unlock()
	if ok {
		return id
	}
	res, err := conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 30, false, "(objectClass=*)", []string{t.shape.id}, nil))
	if err != nil || len(res.Entries) != 1 {
		return ""
	}
	id = t.entryID(res.Entries[0])
	t.mu.Lock()
	t.byDN[normalizeDN(dn)] = id
	t.mu.Unlock()
	return id
}

// find returns what is known of the entry with this id, searching for it when it is
// not known yet. ErrNotFound when there is none.
func (t *Target) find(conn *goldap.Conn, base, id string) (known, error) {
	t.mu.Lock()
	k, ok := t.byID[id]
	t.mu.Unlock()
	if ok {
		return *k, nil
	}
	filter, err := t.idFilter(id)
	if err != nil {
		return known{}, fmt.Errorf("%w: %v", connectors.ErrNotFound, err)
	}
	res, err := conn.Search(goldap.NewSearchRequest(base, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 2, 30, false, filter, []string{t.shape.id, "userAccountControl"}, nil))
	if err != nil {
		return known{}, classify("finding "+id, err)
	}
	if len(res.Entries) != 1 {
		return known{}, fmt.Errorf("%s: %w", id, connectors.ErrNotFound)
	}
	e := res.Entries[0]
	uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
	k = &known{dn: e.DN, uac: uac}
	t.mu.Lock()
	t.byID[id] = k
	t.byDN[normalizeDN(e.DN)] = id
	t.mu.Unlock()
	return *k, nil
}

func (t *Target) forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k, ok := t.byID[id]; ok {
		delete(t.byDN, normalizeDN(k.dn))
		delete(t.byID, id)
	}
}

// read reads one entry by DN.
func (t *Target) read(conn *goldap.Conn, dn string) (connectors.Account, error) {
	res, err := conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 30, false, "(objectClass=*)", t.attrs, nil))
	if err != nil {
		return connectors.Account{}, classify("reading "+dn, err)
	}
	if len(res.Entries) != 1 {
		return connectors.Account{}, fmt.Errorf("%s: %w", dn, connectors.ErrNotFound)
	}
	return t.remember(conn, res.Entries[0]), nil
}

// Create adds the account's entry, with a password per initialPassword, and reads its
// id back.
func (t *Target) Create(ctx context.Context, desired connectors.Account) (connectors.Account, error) {
	e, err := t.toEntry(desired.Attributes)
	if err != nil {
		return connectors.Account{}, err
	}
	dn := t.dn(e)
	var created connectors.Account
	err = t.pool.do(ctx, func(conn *goldap.Conn) error {
		req := goldap.NewAddRequest(dn, nil)
		req.Attribute("objectClass", t.shape.objectClasses)
		for attr, values := range e.attrs {
			if len(values) > 0 {
				req.Attribute(attr, values)
			}
		}
		if e.manager != "" {
			if m, err := t.find(conn, t.usersDN, e.manager); err == nil {
				req.Attribute("manager", []string{m.dn})
			}
		}
		enableLater, err := t.addCredentials(req)
		if err != nil {
			return err
		}
		if err := conn.Add(req); err != nil {
			return t.explain("creating "+dn, err)
		}
		if created, err = t.read(conn, dn); err != nil {
			return err
		}
		if enableLater {
			// Without a password the account was created disabled; enabling it is
			// refused where the domain's password policy demands one, and the account
			// then stays disabled, which its status shows.
			if err := t.setUAC(conn, created.ID, func(uac int64) int64 { return uac &^ uacDisabled }); err == nil {
				created.Active = true
			}
		}
		return nil
	})
	return created, err
}

// addCredentials adds the password and the account control an add needs. It reports
// whether an Active Directory account was added disabled, to be enabled after.
func (t *Target) addCredentials(req *goldap.AddRequest) (bool, error) {
	if t.password == identityv1alpha1.LDAPPasswordRandom {
		password, err := randomPassword()
		if err != nil {
			return false, err
		}
		if t.ad {
			req.Attribute("unicodePwd", []string{unicodePwd(password)})
			req.Attribute("pwdLastSet", []string{"0"})
			req.Attribute("userAccountControl", []string{strconv.Itoa(uacNormalAccount)})
			return false, nil
		}
		req.Attribute("userPassword", []string{ssha(password)})
		return false, nil
	}
	if t.ad {
		req.Attribute("userAccountControl", []string{strconv.Itoa(uacNormalAccount | uacDisabled)})
		return true, nil
	}
	return false, nil
}

// Update writes what differs between current and desired in one modify, after a
// ModifyDN when the entry's name or OU changes, and reactivates an inactive account.
func (t *Target) Update(ctx context.Context, current, desired connectors.Account) (connectors.Account, error) {
	want, err := t.toEntry(desired.Attributes)
	if err != nil {
		return connectors.Account{}, err
	}
	had, _ := t.toEntry(current.Attributes)
	updated := connectors.Account{ID: current.ID, Active: current.Active, Attributes: desired.Attributes}
	err = t.pool.do(ctx, func(conn *goldap.Conn) error {
		k, err := t.find(conn, t.usersDN, current.ID)
		if err != nil {
			return err
		}
		dn, err := t.move(conn, current.ID, k.dn, t.renamed(k.dn, had, want))
		if err != nil {
			return err
		}
		req := goldap.NewModifyRequest(dn, nil)
		for attr, values := range want.attrs {
			if attr == t.shape.rdn || slices.Equal(values, had.attrs[attr]) {
				continue
			}
			if len(values) == 0 {
				if len(had.attrs[attr]) > 0 {
					req.Replace(attr, nil)
				}
				continue
			}
			req.Replace(attr, values)
		}
		if want.manager != had.manager {
			managerDN := ""
			if want.manager != "" {
				if m, err := t.find(conn, t.usersDN, want.manager); err == nil {
					managerDN = m.dn
				}
			}
			req.Replace("manager", nonEmpty(managerDN))
		}
		if desired.Active && !current.Active && !t.ad {
			req.Replace(t.lock.Name, nil)
		}
		if len(req.Changes) > 0 {
			if err := conn.Modify(req); err != nil {
				return t.explain("updating "+dn, err)
			}
		}
		if desired.Active && !current.Active && t.ad {
			if err := t.setUAC(conn, current.ID, func(uac int64) int64 { return uac &^ uacDisabled }); err != nil {
				return err
			}
		}
		updated.Active = desired.Active || current.Active
		return nil
	})
	if err != nil {
		return connectors.Account{}, err
	}
	return updated, nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// renamed is where an entry at dn belongs once current becomes desired: a new name
// when the attribute that names it changes, a new parent when the OU does. Otherwise it
// keeps what it has, so that an adopted entry named by someone else (CN=Ada Lovelace)
// is not renamed by an unrelated update.
func (t *Target) renamed(dn string, current, desired entry) string {
	parsed, err := goldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 {
		return dn
	}
	rdn := parsed.RDNs[0].String()
	if current.rdnValue != desired.rdnValue {
		rdn = t.shape.rdn + "=" + goldap.EscapeDN(desired.rdnValue)
	}
	parent := (&goldap.DN{RDNs: parsed.RDNs[1:]}).String()
	if !strings.EqualFold(current.container, desired.container) {
		parent = t.parentOf(desired)
	}
	return rdn + "," + parent
}

// parentOf is the container an entry belongs in.
func (t *Target) parentOf(e entry) string {
	if e.container == "" {
		return t.usersDN
	}
	return e.container + "," + t.usersDN
}

// move renames or moves an entry when its DN should change, and returns the DN it has.
func (t *Target) move(conn *goldap.Conn, id, from, to string) (string, error) {
	fromDN, err1 := goldap.ParseDN(from)
	toDN, err2 := goldap.ParseDN(to)
	if err1 != nil || err2 != nil || fromDN.EqualFold(toDN) {
		return from, nil
	}
	rdn := toDN.RDNs[0].String()
	parent := &goldap.DN{RDNs: toDN.RDNs[1:]}
	newSuperior := ""
	if !(&goldap.DN{RDNs: fromDN.RDNs[1:]}).EqualFold(parent) {
		newSuperior = parent.String()
	}
	if err := conn.ModifyDN(goldap.NewModifyDNRequest(from, rdn, true, newSuperior)); err != nil {
		return "", t.explain("moving "+from+" to "+to, err)
	}
	t.mu.Lock()
	delete(t.byDN, normalizeDN(from))
	t.byDN[normalizeDN(to)] = id
	if k := t.byID[id]; k != nil {
		k.dn = to
	}
	t.mu.Unlock()
	return to, nil
}

// Deactivate disables the account (Active Directory: the ACCOUNTDISABLE bit, keeping
// the others; OpenLDAP: the lock attribute), then moves it to disabledUsersDN if set.
func (t *Target) Deactivate(ctx context.Context, current connectors.Account) (connectors.Account, error) {
	err := t.pool.do(ctx, func(conn *goldap.Conn) error {
		k, err := t.find(conn, t.usersDN, current.ID)
		if err != nil {
			return err
		}
		if t.ad {
			err = t.setUAC(conn, current.ID, func(uac int64) int64 { return uac | uacDisabled })
		} else {
			req := goldap.NewModifyRequest(k.dn, nil)
			req.Replace(t.lock.Name, []string{t.lock.Value})
			if err = conn.Modify(req); err != nil {
				err = t.explain("locking "+k.dn, err)
			}
		}
		if err != nil || t.disabledUsersDN == "" {
			return err
		}
		parsed, _ := goldap.ParseDN(k.dn)
		_, err = t.move(conn, current.ID, k.dn, parsed.RDNs[0].String()+","+t.disabledUsersDN)
		return err
	})
	if err != nil {
		return connectors.Account{}, err
	}
	current.Active = false
	return current, nil
}

// setUAC changes an Active Directory account's userAccountControl as one
// compare-and-swap (delete the old value, add the new one in one modify), so that a
// bit someone else set meanwhile is kept: when the value changed, it reads it again.
func (t *Target) setUAC(conn *goldap.Conn, id string, change func(int64) int64) error {
	for attempt := 0; ; attempt++ {
		k, err := t.find(conn, t.usersDN, id)
		if err != nil {
			return err
		}
		next := change(k.uac)
		if next == k.uac {
			return nil
		}
		req := goldap.NewModifyRequest(k.dn, nil)
		req.Delete("userAccountControl", []string{strconv.FormatInt(k.uac, 10)})
		req.Add("userAccountControl", []string{strconv.FormatInt(next, 10)})
		err = conn.Modify(req)
		if err == nil {
			t.mu.Lock()
			if cur := t.byID[id]; cur != nil {
				cur.uac = next
			}
			t.mu.Unlock()
			return nil
		}
		if attempt < 2 && (goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchAttribute) || goldap.IsErrorWithCode(err, goldap.LDAPResultAttributeOrValueExists)) {
			t.forget(id) // someone changed it: read it again
			continue
		}
		return t.explain("setting userAccountControl of "+k.dn, err)
	}
}

// Delete deletes the account's entry; an entry already gone is success.
func (t *Target) Delete(ctx context.Context, id string) error {
	return t.pool.do(ctx, func(conn *goldap.Conn) error {
		k, err := t.find(conn, t.usersDN, id)
		if errors.Is(err, connectors.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := conn.Del(goldap.NewDelRequest(k.dn, nil)); err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
			return t.explain("deleting "+k.dn, err)
		}
		t.forget(id)
		return nil
	})
}

// explain classifies a write's failure, turning the directory's password and schema
// refusals into messages a person can act on.
func (t *Target) explain(what string, err error) error {
	classified := classify(what, err)
	var ldapErr *goldap.Error
	if !errors.As(err, &ldapErr) {
		return classified
	}
	text := ldapErr.Error()
	switch {
	case t.ad && strings.Contains(text, "0000052D"):
		return &connectors.PermanentError{Message: what + ": Active Directory's password policy refuses the account's password " +
			"(Roster sets a random 32-character one with every character class, or none with initialPassword None): " + serverText(ldapErr)}
	case ldapErr.ResultCode == goldap.LDAPResultUnwillingToPerform && t.ad && strings.Contains(strings.ToLower(text), "password"):
		return &connectors.PermanentError{Message: what + ": Active Directory refuses the password: " + serverText(ldapErr)}
	case ldapErr.ResultCode == goldap.LDAPResultObjectClassViolation || ldapErr.ResultCode == goldap.LDAPResultUndefinedAttributeType:
		return &connectors.PermanentError{Message: what + ": the directory's schema refuses the entry (check the mapping's ldap: attributes): " + serverText(ldapErr)}
	}
	return classified
}

// serverText is the directory's own explanation of a refusal, bounded.
func serverText(err *goldap.Error) string {
	text := err.Err.Error()
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	return text
}
