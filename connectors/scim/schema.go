// Package scim speaks SCIM 2.0 (RFC 7643 schemas, RFC 7644 protocol) once, for both
// sides: a client that provisions accounts into SCIM apps (a connectors.Target) and a
// server that identity providers push users and groups to.
package scim

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Schema and message URNs (RFC 7643 §8.7, RFC 7644 §3).
const (
	SchemaUser                  = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaEnterpriseUser        = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	SchemaGroup                 = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaServiceProviderConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	SchemaResourceType          = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	SchemaSchema                = "urn:ietf:params:scim:schemas:core:2.0:Schema"
	MessageListResponse         = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	MessagePatchOp              = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	MessageError                = "urn:ietf:params:scim:api:messages:2.0:Error"

	// MediaType is the SCIM content type.
	MediaType = "application/scim+json"
)

// Resource is a SCIM resource as JSON holds it. Attribute names are case-insensitive
// (RFC 7643 §2.1); the methods here honour that.
type Resource map[string]any

// ID is the service provider's id for the resource.
func (r Resource) ID() string { s, _ := r.lookup("id").(string); return s }

// Version is meta.version, the resource's ETag.
func (r Resource) Version() string {
	meta, _ := r.lookup("meta").(map[string]any)
	v, _ := Resource(meta).lookup("version").(string)
	return v
}

// Active is the active attribute; a resource without one is active.
func (r Resource) Active() bool {
	v, ok := Bool(r.lookup("active"))
	return !ok || v
}

// Clone copies the resource deeply.
func (r Resource) Clone() Resource {
	out, _ := deepCopy(map[string]any(r)).(map[string]any)
	return out
}

// cloneForChange copies r for a change, except the elements of its multi-valued
// attributes, which the copy shares: ApplyPatch and PUT replace an element, never alter
// it, so adding members to a large group copies the list of members, not every member.
func (r Resource) cloneForChange() Resource {
	out := make(Resource, len(r))
	for k, v := range r {
		switch t := v.(type) {
		case map[string]any:
			out[k] = map[string]any(Resource(t).cloneForChange())
		case []any:
			out[k] = slices.Clone(t)
		default:
			out[k] = v
		}
	}
	return out
}

func (r Resource) lookup(name string) any {
	k, ok := findKey(r, name)
	if !ok {
		return nil
	}
	return r[k]
}

// Path is an attribute path: an optional extension schema URN, an attribute and an
// optional sub-attribute ("name.givenName",
// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value").
type Path struct {
	Schema string
	Attr   string
	Sub    string
}

// ParsePath parses an attribute path. A core schema prefix is dropped, so
// "urn:ietf:params:scim:schemas:core:2.0:User:userName" is just userName.
func ParsePath(s string) (Path, error) {
	var p Path
	rest := s
	if len(s) > 4 && strings.EqualFold(s[:4], "urn:") {
		i := strings.LastIndex(s, ":")
		p.Schema, rest = s[:i], s[i+1:]
		if strings.EqualFold(p.Schema, SchemaUser) || strings.EqualFold(p.Schema, SchemaGroup) {
			p.Schema = ""
		}
	}
	p.Attr, p.Sub, _ = strings.Cut(rest, ".")
	if !validName(p.Attr) || (p.Sub != "" && !validName(p.Sub)) {
		return Path{}, fmt.Errorf("%q is not an attribute path", s)
	}
	return p, nil
}

// String is the path in SCIM notation.
func (p Path) String() string {
	s := p.Attr
	if p.Sub != "" {
		s += "." + p.Sub
	}
	if p.Schema != "" {
		s = p.Schema + ":" + s
	}
	return s
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		digitOrMark := c >= '0' && c <= '9' || c == '_' || c == '-'
		if !alpha && (c != '$' || i != 0) && (i == 0 || !digitOrMark) {
			return false
		}
	}
	return true
}

// container is the object that holds p.Attr: the resource or its extension object.
func (r Resource) container(p Path, create bool) map[string]any {
	if p.Schema == "" {
		return r
	}
	k, ok := findKey(r, p.Schema)
	if m, isMap := r[k].(map[string]any); ok && isMap {
		return m
	}
	if !create {
		return nil
	}
	if !ok {
		k = p.Schema
	}
	m := map[string]any{}
	r[k] = m
	return m
}

// Get returns the value at p.
func (r Resource) Get(p Path) (any, bool) {
	c := r.container(p, false)
	k, ok := findKey(c, p.Attr)
	if !ok {
		return nil, false
	}
	v := c[k]
	if p.Sub == "" {
		return v, v != nil
	}
	m, _ := v.(map[string]any)
	k, ok = findKey(m, p.Sub)
	if !ok || m[k] == nil {
		return nil, false
	}
	return m[k], true
}

// Set puts v at p, creating the extension and complex objects it needs.
func (r Resource) Set(p Path, v any) {
	c := r.container(p, true)
	k, ok := findKey(c, p.Attr)
	if !ok {
		k = p.Attr
	}
	if p.Sub == "" {
		c[k] = v
		return
	}
	m, _ := c[k].(map[string]any)
	if m == nil {
		m = map[string]any{}
		c[k] = m
	}
	sk, ok := findKey(m, p.Sub)
	if !ok {
		sk = p.Sub
	}
	m[sk] = v
}

// Remove deletes the value at p; an emptied extension or complex object goes too.
func (r Resource) Remove(p Path) {
	c := r.container(p, false)
	k, ok := findKey(c, p.Attr)
	if !ok {
		return
	}
	if p.Sub == "" {
		delete(c, k)
	} else if m, _ := c[k].(map[string]any); m != nil {
		if sk, ok := findKey(m, p.Sub); ok {
			delete(m, sk)
		}
		if len(m) == 0 {
			delete(c, k)
		}
	}
	if p.Schema != "" && len(c) == 0 {
		if sk, ok := findKey(r, p.Schema); ok {
			delete(r, sk)
		}
	}
}

// Flatten lists the resource's attributes by path, the form Roster's canonical account
// schema uses: complex single values become "attr.sub", extension attributes keep their
// URN prefix, multi-valued attributes stay lists. id, meta, schemas and active are left
// out: they are not attributes a mapping sets.
func (r Resource) Flatten() map[string]any {
	out := map[string]any{}
	for k, v := range r {
		switch strings.ToLower(k) {
		case "id", "meta", "schemas", "active":
			continue
		}
		if strings.HasPrefix(strings.ToLower(k), "urn:") {
			ext, _ := v.(map[string]any)
			for ek, ev := range ext {
				flattenInto(out, k+":"+ek, ev)
			}
			continue
		}
		flattenInto(out, k, v)
	}
	return out
}

func flattenInto(out map[string]any, prefix string, v any) {
	if m, ok := v.(map[string]any); ok {
		for k, sv := range m {
			out[prefix+"."+k] = sv
		}
		return
	}
	out[prefix] = v
}

// Unflatten builds a resource from attributes by path.
func Unflatten(attrs map[string]any) (Resource, error) {
	r := Resource{}
	for _, k := range slices.Sorted(maps.Keys(attrs)) { // "name" before "name.givenName"
		p, err := ParsePath(k)
		if err != nil {
			return nil, err
		}
		r.Set(p, attrs[k])
	}
	return r, nil
}

// findKey finds a key in m ignoring letter case, preferring an exact match; of keys
// that differ only in case ("title" and "TITLE" from a careless or hostile peer), the
// first in byte order, so that every lookup picks the same one.
func findKey(m map[string]any, name string) (string, bool) {
	if m == nil {
		return "", false
	}
	if _, ok := m[name]; ok {
		return name, true
	}
	found, ok := "", false
	for k := range m {
		if strings.EqualFold(k, name) && (!ok || k < found) {
			found, ok = k, true
		}
	}
	return found, ok
}

// Bool reads a boolean the way identity providers send it: true, or "True"/"false"
// strings (Entra ID sends strings).
func Bool(v any) (value, ok bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		parsed, err := strconv.ParseBool(strings.ToLower(b))
		return parsed, err == nil
	}
	return false, false
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = deepCopy(e)
		}
		return out
	case Resource:
		return deepCopy(map[string]any(t))
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}

// ListResponse is a page of resources (RFC 7644 §3.4.2), with the cursor of RFC 9865.
type ListResponse struct {
	Schemas      []string   `json:"schemas"`
	TotalResults int        `json:"totalResults"`
	StartIndex   int        `json:"startIndex,omitempty"`
	ItemsPerPage int        `json:"itemsPerPage"`
	NextCursor   string     `json:"nextCursor,omitempty"`
	Resources    []Resource `json:"Resources"`
}

// PatchRequest is a PATCH body (RFC 7644 §3.5.2).
type PatchRequest struct {
	Schemas    []string         `json:"schemas"`
	Operations []PatchOperation `json:"Operations"`
}

// PatchOperation is one PATCH operation. Op is matched case-insensitively: Entra ID
// sends "Replace", "Add", "Remove".
type PatchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

// NewPatch builds a PATCH body.
func NewPatch(ops ...PatchOperation) PatchRequest {
	return PatchRequest{Schemas: []string{MessagePatchOp}, Operations: ops}
}

// Error is the SCIM error body (RFC 7644 §3.12).
type Error struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

// scimType values (RFC 7644 §3.12).
const (
	ErrUniqueness    = "uniqueness"
	ErrInvalidFilter = "invalidFilter"
	ErrInvalidSyntax = "invalidSyntax"
	ErrInvalidPath   = "invalidPath"
	ErrNoTarget      = "noTarget"
	ErrInvalidValue  = "invalidValue"
	ErrMutability    = "mutability"
	ErrTooMany       = "tooMany"
)

// ParseError reads an error body leniently: status may be a string or a number.
func ParseError(body []byte) (Error, bool) {
	var raw struct {
		Status   json.RawMessage `json:"status"`
		ScimType string          `json:"scimType"`
		Detail   string          `json:"detail"`
	}
	if json.Unmarshal(body, &raw) != nil {
		return Error{}, false
	}
	status := strings.Trim(string(raw.Status), `"`)
	if status == "" && raw.Detail == "" && raw.ScimType == "" {
		return Error{}, false
	}
	return Error{Status: status, ScimType: raw.ScimType, Detail: raw.Detail}, true
}

// Flag is a boolean in a service's configuration, read leniently: true or "true".
type Flag bool

// UnmarshalJSON accepts a boolean or a string.
func (f *Flag) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	parsed, _ := Bool(v)
	*f = Flag(parsed)
	return nil
}

// Supported is a {"supported": …} object in ServiceProviderConfig.
type Supported struct {
	Supported Flag `json:"supported"`
}

// ServiceProviderConfig describes what a SCIM service supports (RFC 7643 §5,
// pagination from RFC 9865).
type ServiceProviderConfig struct {
	Schemas               []string          `json:"schemas"`
	DocumentationURI      string            `json:"documentationUri,omitempty"`
	Patch                 Supported         `json:"patch"`
	Bulk                  BulkConfig        `json:"bulk"`
	Filter                FilterConfig      `json:"filter"`
	ChangePassword        Supported         `json:"changePassword"`
	Sort                  Supported         `json:"sort"`
	ETag                  Supported         `json:"etag"`
	Pagination            *PaginationConfig `json:"pagination,omitempty"`
	AuthenticationSchemes []AuthScheme      `json:"authenticationSchemes"`
}

// BulkConfig is ServiceProviderConfig.bulk.
type BulkConfig struct {
	Supported      Flag `json:"supported"`
	MaxOperations  int  `json:"maxOperations"`
	MaxPayloadSize int  `json:"maxPayloadSize"`
}

// FilterConfig is ServiceProviderConfig.filter.
type FilterConfig struct {
	Supported  Flag `json:"supported"`
	MaxResults int  `json:"maxResults"`
}

// PaginationConfig is ServiceProviderConfig.pagination (RFC 9865).
type PaginationConfig struct {
	Cursor                  Flag   `json:"cursor"`
	Index                   Flag   `json:"index"`
	DefaultPaginationMethod string `json:"defaultPaginationMethod,omitempty"`
	DefaultPageSize         int    `json:"defaultPageSize,omitempty"`
	MaxPageSize             int    `json:"maxPageSize,omitempty"`
}

// AuthScheme is one authentication scheme a service accepts.
type AuthScheme struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Primary     bool   `json:"primary,omitempty"`
}
