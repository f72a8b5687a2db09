package ldap

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// Canonical paths an LDAP target keeps beyond the plain attributes of accountShape.
const (
	// attrOU is the mapping target that places an entry below usersDN, as RDNs
	// ("ou=eng").
	attrOU = "organizationalUnit"
	// nativePrefix marks a mapping target that is a directory attribute by its own name
	// ("ldap:employeeID").
	nativePrefix = "ldap:"

	attrManager    = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
	attrDepartment = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
)

// accountShape is how one kind of directory holds accounts and groups.
type accountShape struct {
	objectClasses []string
	rdn           string // naming attribute of an account entry
	login         string // the attribute canonical userName is kept in
	id            string
	binaryID      bool
	userFilter    string
	// plain maps canonical paths to the directory attribute that holds them as is.
	plain map[string]string

	groupClasses []string
	groupFilter  string
}

var shapes = map[identityv1alpha1.LDAPFlavor]accountShape{
	identityv1alpha1.LDAPFlavorOpenLDAP: {
		objectClasses: []string{"top", "person", "organizationalPerson", "inetOrgPerson"},
		rdn:           "uid", login: "uid", id: "entryUUID",
		userFilter: "(objectClass=inetOrgPerson)",
		plain: map[string]string{
			"displayName": "displayName", "name.givenName": "givenName", "name.familyName": "sn",
			"title": "title", "userType": "employeeType", attrDepartment: "departmentNumber",
		},
		groupClasses: []string{"top", "groupOfNames"}, groupFilter: "(objectClass=groupOfNames)",
	},
	identityv1alpha1.LDAPFlavorActiveDirectory: {
		objectClasses: []string{"top", "person", "organizationalPerson", "user"},
		rdn:           "cn", login: "userPrincipalName", id: "objectGUID", binaryID: true,
		userFilter: "(&(objectCategory=person)(objectClass=user))",
		plain: map[string]string{
			"displayName": "displayName", "name.givenName": "givenName", "name.familyName": "sn",
			"name.middleName": "middleName", "title": "title", "userType": "employeeType",
			attrDepartment: "department",
		},
		groupClasses: []string{"top", "group"}, groupFilter: "(objectClass=group)",
	},
}

// Active Directory's userAccountControl bits Roster reads and writes.
const (
	uacDisabled      = 0x2
	uacNormalAccount = 0x200
)

// DefaultMapping is the flavor's part of the default mapping, over Roster's: what the
// directory cannot hold is null, and userName follows the flavor.
func (t *Target) DefaultMapping() []identityv1alpha1.ExpressionMapping {
	firstEmail := `user.emails.size() == 0 ? [] : [{"value": (user.emails.exists(e, e.primary) ? ` +
		`user.emails.filter(e, e.primary)[0].value : user.emails[0].value), "primary": true}]`
	m := []identityv1alpha1.ExpressionMapping{
		{Target: "emails", Expression: firstEmail},
		{Target: "roles", Expression: "null"},
	}
	if t.externalIDAttr == "" {
		m = append(m, identityv1alpha1.ExpressionMapping{Target: connectors.AttrExternalID, Expression: "null"})
	}
	if t.ad {
		// userName is the userPrincipalName, written without the default suffix.
		suffix := strconv.Quote("@" + t.upnSuffix)
		return append(m, identityv1alpha1.ExpressionMapping{Target: "userName",
			Expression: `user.userName.lowerAscii().endsWith(` + suffix + `) ? user.userName.split("@")[0] : user.userName`})
	}
	return append(m,
		identityv1alpha1.ExpressionMapping{Target: "name.middleName", Expression: "null"},
		identityv1alpha1.ExpressionMapping{Target: "name.familyName", Expression: `user.name.familyName != "" ? user.name.familyName : user.userName`},
	)
}

// keeps reports whether the directory holds a canonical path, so that a mapping to one
// it does not hold is refused when the connection is built rather than found as a
// difference at every resync.
func (t *Target) keeps(path string) bool {
	if _, ok := t.shape.plain[path]; ok {
		return true
	}
	if name, ok := strings.CutPrefix(path, nativePrefix); ok {
		return validAttributeName(name)
	}
	switch path {
	case connectors.AttrUserName, connectors.AttrEmails, attrManager, attrOU:
		return true
	case connectors.AttrExternalID:
		return t.externalIDAttr != ""
	}
	return false
}

func validAttributeName(name string) bool {
	if name == "" || len(name) > 64 || !isLetter(name[0]) {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if !isLetter(c) && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// entry is an account as the directory holds it: its DN's parts and its attributes.
type entry struct {
	rdnValue  string
	container string // "" for usersDN itself, else RDNs below it ("ou=eng")
	attrs     map[string][]string
	manager   string // the manager's account id
}

// toEntry translates canonical attributes into directory attributes.
func (t *Target) toEntry(desired map[string]any) (entry, error) {
	e := entry{attrs: map[string][]string{}}
	set := func(attr string, v any) error {
		values, err := stringValues(v)
		if err != nil {
			return fmt.Errorf("%s: %w", attr, err)
		}
		e.attrs[attr] = values
		return nil
	}
	for path, v := range desired {
		var err error
		switch {
		case path == connectors.AttrUserName:
			err = set(t.shape.login, v)
		case path == connectors.AttrExternalID:
			err = set(t.externalIDAttr, v)
		case path == connectors.AttrEmails:
			err = set("mail", connectors.Account{Attributes: map[string]any{connectors.AttrEmails: v}}.Email())
		case path == attrManager:
			e.manager, _ = v.(string)
		case path == attrOU:
			e.container, _ = v.(string)
		case strings.HasPrefix(path, nativePrefix):
			err = set(strings.TrimPrefix(path, nativePrefix), v)
		default:
			if attr, ok := t.shape.plain[path]; ok {
				err = set(attr, v)
			}
		}
		if err != nil {
			return entry{}, &connectors.PermanentError{Message: err.Error()}
		}
	}
	for attr, values := range e.attrs {
		if len(values) == 0 {
			delete(e.attrs, attr)
		}
	}
	t.derive(e.attrs)
	e.rdnValue = first(e.attrs[t.shape.rdn])
	if e.rdnValue == "" {
		return entry{}, &connectors.PermanentError{Message: "the mapping gives the account no " + t.shape.rdn + ", which names its entry"}
	}
	if t.ad {
		if sam := first(e.attrs["sAMAccountName"]); len([]rune(sam)) > 20 || strings.ContainsAny(sam, `"/\[]:;|=,+*?<>@`) {
			return entry{}, &connectors.PermanentError{Message: fmt.Sprintf("sAMAccountName %q is not one Active Directory accepts "+
				"(at most 20 characters, none of \"/\\[]:;|=,+*?<>@): map a shorter one with the mapping target ldap:sAMAccountName", sam)}
		}
	}
	if e.container != "" {
		if _, err := goldap.ParseDN(e.container); err != nil {
			return entry{}, &connectors.PermanentError{Message: fmt.Sprintf("organizationalUnit %q is not a DN such as ou=eng: %v", e.container, err)}
		}
	}
	return e, nil
}

// derive fills in the attributes a directory requires that the mapping did not set:
// Active Directory's userPrincipalName suffix, sAMAccountName (userName before any @)
// and cn (the sAMAccountName); OpenLDAP's cn (displayName, else uid) and sn (uid).
func (t *Target) derive(attrs map[string][]string) {
	orDefault := func(attr, value string) {
		if len(attrs[attr]) == 0 && value != "" {
			attrs[attr] = []string{value}
		}
	}
	if t.ad {
		userName := first(attrs["userPrincipalName"])
		if userName != "" && !strings.Contains(userName, "@") {
			attrs["userPrincipalName"] = []string{userName + "@" + t.upnSuffix}
		}
		local, _, _ := strings.Cut(userName, "@")
		orDefault("sAMAccountName", local)
		orDefault("cn", first(attrs["sAMAccountName"]))
		return
	}
	orDefault("cn", first(attrs["displayName"]))
	orDefault("cn", first(attrs["uid"]))
	orDefault("sn", first(attrs["uid"]))
}

// userName is the canonical userName of an entry: Active Directory's
// userPrincipalName without the default suffix, or uid.
func (t *Target) userName(e *goldap.Entry) string {
	name := e.GetAttributeValue(t.shape.login)
	if t.ad {
		if local, domain, ok := strings.Cut(name, "@"); ok && strings.EqualFold(domain, t.upnSuffix) {
			return local
		}
		if name == "" {
			return e.GetAttributeValue("sAMAccountName")
		}
	}
	return name
}

// dn is where an entry belongs.
func (t *Target) dn(e entry) string {
	return t.shape.rdn + "=" + goldap.EscapeDN(e.rdnValue) + "," + t.parentOf(e)
}

func stringValues(v any) ([]string, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case string:
		if t == "" {
			return nil, nil
		}
		return []string{t}, nil
	case bool, int64, float64:
		return []string{fmt.Sprint(t)}, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, item := range t {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("a list for a directory attribute must hold strings, not %T", item)
			}
			if s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("a directory attribute cannot hold %T", v)
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

// account translates an entry the directory returned into canonical attributes, the
// same paths toEntry reads, so that an account written as desired shows no difference.
func (t *Target) account(e *goldap.Entry, managerID func(dn string) string) connectors.Account {
	attrs := map[string]any{}
	for path, attr := range t.shape.plain {
		if v := e.GetAttributeValue(attr); v != "" {
			attrs[path] = v
		}
	}
	attrs[connectors.AttrUserName] = t.userName(e)
	if t.externalIDAttr != "" {
		attrs[connectors.AttrExternalID] = e.GetAttributeValue(t.externalIDAttr)
	}
	if mail := e.GetAttributeValue("mail"); mail != "" {
		attrs[connectors.AttrEmails] = []any{map[string]any{"value": mail, "type": "work", "primary": true}}
	}
	if m := e.GetAttributeValue("manager"); m != "" {
		attrs[attrManager] = managerID(m)
	}
	if ou := t.containerOf(e.DN); ou != "" {
		attrs[attrOU] = ou
	}
	for _, name := range t.native {
		values := e.GetAttributeValues(name)
		switch len(values) {
		case 0:
		case 1:
			attrs[nativePrefix+name] = values[0]
		default:
			list := make([]any, len(values))
			for i, v := range values {
				list[i] = v
			}
			attrs[nativePrefix+name] = list
		}
	}
	return connectors.Account{ID: t.entryID(e), Active: t.active(e), Attributes: attrs}
}

// containerOf is the part of an entry's parent DN below usersDN, attribute types in
// lower case, "" for an entry right under usersDN or outside it.
func (t *Target) containerOf(dn string) string {
	parsed, err := goldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) <= t.usersDNDepth+1 {
		return ""
	}
	rdns := parsed.RDNs[1 : len(parsed.RDNs)-t.usersDNDepth]
	parts := make([]string, len(rdns))
	for i, rdn := range rdns {
		var avs []string
		for _, av := range rdn.Attributes {
			avs = append(avs, strings.ToLower(av.Type)+"="+goldap.EscapeDN(av.Value))
		}
		parts[i] = strings.Join(avs, "+")
	}
	return strings.Join(parts, ",")
}

func (t *Target) active(e *goldap.Entry) bool {
	if t.ad {
		uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
		return uac&uacDisabled == 0
	}
	return !slices.ContainsFunc(e.GetAttributeValues(t.lock.Name), func(v string) bool { return strings.EqualFold(v, t.lock.Value) })
}

// entryID is an entry's immutable id as a string.
func (t *Target) entryID(e *goldap.Entry) string {
	if t.shape.binaryID {
		return guid(e.GetRawAttributeValue(t.shape.id))
	}
	return e.GetAttributeValue(t.shape.id)
}

// idFilter is a filter that finds an entry by its id.
func (t *Target) idFilter(id string) (string, error) {
	if !t.shape.binaryID {
		return "(" + t.shape.id + "=" + goldap.EscapeFilter(id) + ")", nil
	}
	raw, err := guidBytes(id)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("(objectGUID=")
	for _, c := range raw {
		fmt.Fprintf(&b, "\\%02x", c)
	}
	b.WriteString(")")
	return b.String(), nil
}

// readAttributes are the attributes a search for accounts asks for.
func (t *Target) readAttributes() []string {
	attrs := []string{t.shape.id, t.shape.login, "mail", "manager"}
	if t.ad {
		attrs = append(attrs, "userAccountControl", "sAMAccountName")
	} else {
		attrs = append(attrs, t.lock.Name)
	}
	for _, a := range t.shape.plain {
		attrs = append(attrs, a)
	}
	if t.externalIDAttr != "" {
		attrs = append(attrs, t.externalIDAttr)
	}
	attrs = append(attrs, t.native...)
	slices.Sort(attrs)
	return slices.Compact(attrs)
}
