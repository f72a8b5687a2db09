package scim

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// PatchError is a PATCH that cannot be applied; ScimType says why (invalidPath,
// noTarget, invalidValue, mutability).
type PatchError struct {
	ScimType string
	Detail   string
}

func (e *PatchError) Error() string { return e.Detail }

// booleanAttrs are attributes identity providers send as "True"/"False" strings.
var booleanAttrs = map[string]bool{"active": true, "primary": true}

// readOnlyAttrs cannot be changed by a client.
var readOnlyAttrs = map[string]bool{"id": true, "meta": true}

// ApplyPatch applies PATCH operations to r in order (RFC 7644 §3.5.2), the way
// identity providers really send them: op names in any case, no-path operations whose
// value holds attribute paths as keys ("name.givenName"), booleans as strings, and
// removal of multi-valued members by a value array.
func ApplyPatch(r Resource, ops []PatchOperation) error {
	for i := 0; i < len(ops); {
		if n := removeByValueRun(r, ops[i:]); n > 0 {
			i += n
			continue
		}
		if err := applyOne(r, ops[i]); err != nil {
			return fmt.Errorf("operation %d (%s): %w", i+1, ops[i].Op, err)
		}
		i++
	}
	return nil
}

// removeByValueRun applies the run of `remove attr[value eq "…"]` operations that
// starts ops, all on one attribute, in one pass over its elements, and says how many
// operations it took (0 when ops does not start with one). Roster's client and Entra ID
// remove group members one such operation each; applied one by one, removing 100
// members from a group of 10,000 walked and copied the group 100 times.
func removeByValueRun(r Resource, ops []PatchOperation) int {
	attr, value, ok := removalByValue(ops[0])
	if !ok {
		return 0
	}
	values := map[string]bool{strings.ToLower(value): true}
	n := 1
	for ; n < len(ops); n++ {
		next, value, ok := removalByValue(ops[n])
		if !ok || !strings.EqualFold(next.Schema, attr.Schema) || !strings.EqualFold(next.Attr, attr.Attr) {
			break
		}
		values[strings.ToLower(value)] = true
	}
	current, _ := r.Get(attr)
	list, _ := current.([]any)
	kept := make([]any, 0, len(list))
	for _, e := range list {
		if m, isComplex := e.(map[string]any); !isComplex || !valueIn(m, values) {
			kept = append(kept, e)
		}
	}
	switch {
	case len(kept) == len(list): // removing what is not there is done
	case len(kept) == 0:
		r.Remove(attr)
	default:
		r.Set(attr, kept)
	}
	return n
}

// removalByValue reads an operation of the shape `remove attr[value eq "string"]`.
func removalByValue(op PatchOperation) (attr Path, value string, ok bool) {
	if !strings.EqualFold(op.Op, "remove") || !strings.HasSuffix(op.Path, "]") {
		return Path{}, "", false
	}
	target, err := parsePatchPath(op.Path)
	if err != nil || target.sub != "" || readOnlyAttrs[strings.ToLower(target.Attr)] {
		return Path{}, "", false
	}
	c, isCompare := target.filter.(*compare)
	if !isCompare || c.op != "eq" || c.path != (Path{Attr: c.path.Attr}) || !strings.EqualFold(c.path.Attr, "value") {
		return Path{}, "", false
	}
	value, ok = c.value.(string)
	return target.Path, value, ok
}

// valueIn tells whether an element's "value" is one of values (lower-cased), as the
// filter `value eq "…"` matches it: without regard to letter case.
func valueIn(m map[string]any, values map[string]bool) bool {
	v, _ := Resource(m).Get(Path{Attr: "value"})
	for _, e := range asList(v) {
		if sub, isComplex := e.(map[string]any); isComplex {
			e = Resource(sub).lookup("value")
		}
		if s, isString := e.(string); isString && values[strings.ToLower(s)] {
			return true
		}
	}
	return false
}

func applyOne(r Resource, op PatchOperation) error {
	kind := strings.ToLower(op.Op)
	switch kind {
	case "add", "replace", "remove":
	default:
		return &PatchError{ScimType: ErrInvalidSyntax, Detail: fmt.Sprintf("unknown op %q", op.Op)}
	}
	if op.Path == "" {
		if kind == "remove" {
			return &PatchError{ScimType: ErrNoTarget, Detail: "remove needs a path"}
		}
		values, ok := op.Value.(map[string]any)
		if !ok {
			return &PatchError{ScimType: ErrInvalidValue, Detail: "an operation without a path needs an object value"}
		}
		return applyObject(r, kind, values)
	}
	target, err := parsePatchPath(op.Path)
	if err != nil {
		return &PatchError{ScimType: ErrInvalidPath, Detail: err.Error()}
	}
	return apply(r, kind, target, op.Value)
}

// applyObject applies a no-path add or replace: each key is an attribute path, or an
// extension URN whose value is an object of its attributes.
// Its keys are applied in sorted order: an object that names one attribute twice
// ("title" and "TITLE", or "name" and "name.givenName") has one result, not one per
// walk of the map.
func applyObject(r Resource, kind string, values map[string]any) error {
	for _, k := range slices.Sorted(maps.Keys(values)) {
		v := values[k]
		if readOnlyAttrs[strings.ToLower(k)] || strings.EqualFold(k, "schemas") {
			continue // Okta echoes the group's id in a rename; read-only values are ignored
		}
		paths := map[string]any{k: v}
		if ext, isObject := v.(map[string]any); isObject && isSchemaURN(k) {
			paths = map[string]any{}
			for ek, ev := range ext {
				paths[k+":"+ek] = ev
			}
		}
		for _, path := range slices.Sorted(maps.Keys(paths)) {
			p, err := ParsePath(path)
			if err != nil {
				return &PatchError{ScimType: ErrInvalidPath, Detail: err.Error()}
			}
			if err := apply(r, kind, patchPath{Path: p}, paths[path]); err != nil {
				return err
			}
		}
	}
	return nil
}

// isSchemaURN tells a schema URN ("urn:…:2.0:User") from an attribute path under one.
func isSchemaURN(s string) bool {
	if !strings.HasPrefix(strings.ToLower(s), "urn:") {
		return false
	}
	last := s[strings.LastIndex(s, ":")+1:]
	return strings.EqualFold(last, "User") || strings.EqualFold(last, "Group")
}

// patchPath is a PATCH path: an attribute path, optionally a filter on its elements
// and a sub-attribute of the matching elements (`emails[type eq "work"].value`).
type patchPath struct {
	Path
	filter Filter
	sub    string
}

func parsePatchPath(s string) (patchPath, error) {
	open := strings.IndexByte(s, '[')
	if open < 0 {
		p, err := ParsePath(s)
		return patchPath{Path: p}, err
	}
	closing := strings.LastIndexByte(s, ']')
	if closing < open {
		return patchPath{}, fmt.Errorf("%q has an unclosed [", s)
	}
	p, err := ParsePath(s[:open])
	if err != nil {
		return patchPath{}, err
	}
	f, err := ParseFilter(s[open+1 : closing])
	if err != nil {
		return patchPath{}, fmt.Errorf("%q: %w", s, err)
	}
	pp := patchPath{Path: p, filter: f}
	if rest := s[closing+1:]; rest != "" {
		if !strings.HasPrefix(rest, ".") || !validName(rest[1:]) {
			return patchPath{}, fmt.Errorf("%q: unexpected %q after ]", s, rest)
		}
		pp.sub = rest[1:]
	}
	return pp, nil
}

func apply(r Resource, kind string, target patchPath, value any) error {
	if readOnlyAttrs[strings.ToLower(target.Attr)] && target.Schema == "" {
		return &PatchError{ScimType: ErrMutability, Detail: target.Attr + " is read-only"}
	}
	value = coerce(target, value)
	if target.filter != nil {
		return applyFiltered(r, kind, target, value)
	}
	current, present := r.Get(target.Path)
	switch kind {
	case "remove":
		if list, isList := current.([]any); isList && value != nil {
			r.Set(target.Path, removeValues(list, asList(value)))
			return nil
		}
		r.Remove(target.Path)
	case "add":
		if list, isList := current.([]any); isList || isMultiValued(value) && !present {
			r.Set(target.Path, addValues(list, asList(value)))
			return nil
		}
		return set(r, target.Path, current, value)
	case "replace":
		return set(r, target.Path, current, value)
	}
	return nil
}

// set replaces a value; a complex value is merged into an existing complex value.
func set(r Resource, p Path, current, value any) error {
	if cur, ok := current.(map[string]any); ok {
		if m, ok := value.(map[string]any); ok && p.Sub == "" {
			for k, v := range m {
				cur[k] = coerce(patchPath{Path: Path{Attr: k}}, v)
			}
			return nil
		}
	}
	if value == nil {
		r.Remove(p)
		return nil
	}
	r.Set(p, value)
	return nil
}

func applyFiltered(r Resource, kind string, target patchPath, value any) error {
	current, _ := r.Get(target.Path)
	list, _ := current.([]any)
	matched := false
	var kept []any
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok || !target.filter.Match(m) {
			kept = append(kept, e)
			continue
		}
		matched = true
		m = maps.Clone(m) // elements are shared with the stored resource: see cloneForChange
		switch {
		case kind == "remove" && target.sub == "":
			continue
		case kind == "remove":
			if k, ok := findKey(m, target.sub); ok {
				delete(m, k)
			}
		case target.sub != "":
			m[target.sub] = value
		default:
			if nv, ok := value.(map[string]any); ok {
				for k, v := range nv {
					m[k] = v
				}
			}
		}
		kept = append(kept, m)
	}
	if !matched {
		if kind == "remove" {
			return nil // removing what is not there is done
		}
		if kind == "add" || kind == "replace" {
			// Entra ID: replace emails[type eq "work"].value on a user without one adds it.
			if elem, ok := elementFromFilter(target, value); ok {
				kept = append(kept, elem)
				r.Set(target.Path, kept)
				return nil
			}
		}
		return &PatchError{ScimType: ErrNoTarget, Detail: fmt.Sprintf("no %s element matches the filter", target.Attr)}
	}
	if len(kept) == 0 {
		r.Remove(target.Path)
		return nil
	}
	r.Set(target.Path, kept)
	return nil
}

// elementFromFilter builds the element a filter like [type eq "work"] describes.
func elementFromFilter(target patchPath, value any) (map[string]any, bool) {
	c, ok := target.filter.(*compare)
	if !ok || c.op != "eq" || target.sub == "" {
		return nil, false
	}
	return map[string]any{c.path.Attr: c.value, target.sub: value}, true
}

func isMultiValued(v any) bool { _, ok := v.([]any); return ok }

// addValues appends the values list lacks, each once. The keys are gathered once, so
// that adding to a group of many members costs a pass over them, not one per value.
func addValues(list, values []any) []any {
	have := keysOf(list)
	for _, v := range values {
		if key := elementKey(v); !have[key] {
			have[key] = true
			list = append(list, v)
		}
	}
	return list
}

func removeValues(list, values []any) []any {
	gone := keysOf(values)
	var kept []any
	for _, e := range list {
		if !gone[elementKey(e)] {
			kept = append(kept, e)
		}
	}
	return kept
}

func keysOf(list []any) map[string]bool {
	keys := make(map[string]bool, len(list))
	for _, e := range list {
		keys[elementKey(e)] = true
	}
	return keys
}

// elementKey is what tells a multi-valued attribute's elements apart: a complex
// element's "value" sub-attribute, else the element itself.
func elementKey(v any) string {
	if m, ok := v.(map[string]any); ok {
		if id := Resource(m).lookup("value"); id != nil {
			v = id
		} else {
			return fmt.Sprint(m)
		}
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// coerce turns "True"/"False" strings into booleans for boolean attributes.
func coerce(target patchPath, value any) any {
	name := target.Attr
	if target.Sub != "" {
		name = target.Sub
	}
	if target.sub != "" {
		name = target.sub
	}
	switch v := value.(type) {
	case string:
		if booleanAttrs[strings.ToLower(name)] {
			if b, ok := Bool(v); ok {
				return b
			}
		}
	case map[string]any:
		for k, e := range v {
			v[k] = coerce(patchPath{Path: Path{Attr: k}}, e)
		}
	case []any:
		for i, e := range v {
			if m, ok := e.(map[string]any); ok {
				v[i] = coerce(patchPath{}, m)
			}
		}
	}
	return value
}

func asPatchError(err error) (*PatchError, bool) {
	var pe *PatchError
	ok := errors.As(err, &pe)
	return pe, ok
}
