package connectors

import (
	"strings"
)

// caseInsensitive attribute paths: apps often change the letter case of these.
var caseInsensitive = map[string]bool{AttrUserName: true}

// Differences lists the desired attributes the observed ones do not already have.
// An empty desired value ("", an empty list) means the attribute should be absent.
// Attributes only the app has are not differences.
func Differences(desired, observed map[string]any) []string {
	var diff []string
	for path, want := range desired {
		have, _ := lookupFold(observed, path)
		if !Equivalent(want, have, caseInsensitive[path]) {
			diff = append(diff, path)
		}
	}
	return diff
}

// Equivalent reports whether have already holds want. Objects compare on want's keys
// only; lists compare element by element in any order, the "value" of list elements
// ignoring letter case (emails, members); numbers compare by value.
func Equivalent(want, have any, foldCase bool) bool {
	if IsEmpty(want) {
		return IsEmpty(have)
	}
	switch w := want.(type) {
	case string:
		h, ok := have.(string)
		if foldCase {
			return ok && strings.EqualFold(h, w)
		}
		return ok && h == w
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			hv, _ := lookupFold(h, k)
			if !Equivalent(wv, hv, foldCase) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		return listContains(h, w)
	default:
		if wf, ok := toFloat(want); ok {
			hf, ok := toFloat(have)
			return ok && wf == hf
		}
		return want == have
	}
}

func listContains(have, want []any) bool {
	used := make([]bool, len(have))
	for _, w := range want {
		found := false
		for i, h := range have {
			if !used[i] && elementEquivalent(w, h) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// elementEquivalent compares list elements; an element's "value" ignores letter case.
func elementEquivalent(want, have any) bool {
	w, ok := want.(map[string]any)
	if !ok {
		return Equivalent(want, have, true)
	}
	h, ok := have.(map[string]any)
	if !ok {
		return false
	}
	for k, wv := range w {
		hv, _ := lookupFold(h, k)
		if !Equivalent(wv, hv, strings.EqualFold(k, "value")) {
			return false
		}
	}
	return true
}

// IsEmpty reports whether v is absent: nil, "", false, or an empty list or object.
func IsEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case bool:
		return !t
	case string:
		return t == ""
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	}
	return false
}

func lookupFold(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}
