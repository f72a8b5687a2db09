package directory

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// Labels and annotations on the Users a DirectorySync writes.
const (
	LabelDirectorySync    = "identity.roster.dev/directorysync"
	AnnotationSourceID    = "identity.roster.dev/source-id"
	AnnotationInactive    = "identity.roster.dev/inactive-since"
	AnnotationAppliedHash = "identity.roster.dev/applied-hash"
	// AnnotationSuspensionHeld marks a User a person suspended while the source has it
	// active: the DirectorySync leaves its state alone until a person sets it Active.
	AnnotationSuspensionHeld = "identity.roster.dev/suspension-held"
)

// stringFields are the User spec fields a mapping can set from a string.
var stringFields = map[string]bool{
	"externalID": true, "displayName": true, "title": true, "department": true, "location": true, "employeeType": true,
}

// desiredUser is the User one record maps to.
type desiredUser struct {
	recordID string
	name     string
	userName string
	manager  string // the manager's User name, if any
	// unknownManager is the manager the record names when it is no record of the source.
	unknownManager string
	object         *unstructured.Unstructured
	suspended      bool
	// suspensionHeld: a person suspended the User and the source has it active.
	suspensionHeld bool
}

// skip is why a record did not become a User.
type skip struct {
	reason, detail string
}

// buildUser turns a record's mapped values into the User to apply.
func buildUser(cfg *Config, objName string, r connectors.Record, values map[string]any, resolveManager func(string) string, inactiveSince string, existing *identityv1alpha1.User) (desiredUser, *skip) {
	spec := map[string]any{}
	manager, unknownManager := "", ""
	labels := map[string]any{LabelDirectorySync: cfg.Name}
	attributes := map[string]any{}
	name := map[string]any{}
	for target, v := range values {
		str, isString := v.(string)
		switch {
		case target == "userName":
			if !isString || str == "" {
				return desiredUser{}, &skip{"MissingUserName", r.ID}
			}
			if strings.ContainsAny(str, " \t\r\n") {
				return desiredUser{}, &skip{"InvalidUserName", r.ID}
			}
			spec["userName"] = str
		case target == "emails":
			if emails := emailsOf(v); len(emails) > 0 {
				spec["emails"] = emails
			}
		case target == "groups":
			if groups := stringsOf(v); len(groups) > 0 {
				spec["groups"] = groups
			}
		case target == "manager":
			m := resolveManager(fmt.Sprint(v))
			switch {
			case isString && str != "" && m != "":
				spec["manager"] = map[string]any{"name": m}
				manager = m
			case isString && str != "":
				unknownManager = str
			}
		case target == "state":
			if strings.EqualFold(fmt.Sprint(v), "Suspended") || v == false {
				spec["state"] = string(identityv1alpha1.UserStateSuspended)
			} else {
				spec["state"] = string(identityv1alpha1.UserStateActive)
			}
		case target == "activeFrom" || target == "activeUntil":
			if t, ok := date(str); isString && ok {
				spec[target] = t.Format(time.RFC3339)
			}
		case strings.HasPrefix(target, "name."):
			if isString && str != "" {
				name[strings.TrimPrefix(target, "name.")] = str
			}
		case strings.HasPrefix(target, "labels."):
			if lv := labelValue(fmt.Sprint(v)); lv != "" && v != nil {
				labels[strings.TrimPrefix(target, "labels.")] = lv
			}
		case strings.HasPrefix(target, "attributes."):
			if v != nil && fmt.Sprint(v) != "" {
				attributes[strings.TrimPrefix(target, "attributes.")] = truncate(fmt.Sprint(v), 1024)
			}
		case stringFields[target] && isString && str != "":
			spec[target] = truncate(str, 256)
		}
	}
	if _, ok := spec["userName"]; !ok {
		return desiredUser{}, &skip{"MissingUserName", r.ID}
	}
	if len(name) > 0 {
		spec["name"] = name
	}
	if len(attributes) > 0 {
		spec["attributes"] = attributes
	}
	if from, until := spec["activeFrom"], spec["activeUntil"]; from != nil && until != nil && fmt.Sprint(from) >= fmt.Sprint(until) {
		delete(spec, "activeFrom") // the API refuses it; the contract end is what matters most
	}
	suspended := spec["state"] == string(identityv1alpha1.UserStateSuspended)
	annotations := map[string]any{AnnotationSourceID: r.ID}
	for k, v := range r.Annotations {
		annotations[k] = v
	}
	if suspended {
		annotations[AnnotationInactive] = inactiveSince
	}
	if _, setsState := spec["state"]; setsState && !suspended && suspendedByAPerson(existing) {
		delete(spec, "state") // the kill switch a person pulled wins over the source
		annotations[AnnotationSuspensionHeld] = "true"
	}
	obj := newObject(cfg.Namespace, "User", objName, labels, annotations, spec)
	held := annotations[AnnotationSuspensionHeld] == "true"
	userName, _ := spec["userName"].(string)
	return desiredUser{recordID: r.ID, name: objName, userName: userName, manager: manager, unknownManager: unknownManager,
		object: obj, suspended: suspended, suspensionHeld: held}, nil
}

// suspendedByAPerson reports whether a User is suspended by someone other than its
// DirectorySync: the DirectorySync marks its own suspensions (inactive-since), and
// keeps the mark of a person's suspension it holds.
func suspendedByAPerson(u *identityv1alpha1.User) bool {
	return u != nil && u.Spec.State == identityv1alpha1.UserStateSuspended &&
		(u.Annotations[AnnotationSuspensionHeld] == "true" || u.Annotations[AnnotationInactive] == "")
}

// newObject builds an object to apply, labelled with its DirectorySync, with a hash of
// itself. It carries no owner reference: the garbage collector would delete every User
// with the DirectorySync (foreground deletion even before its finalizer runs), where the
// DirectorySync's deletionPolicy decides, within the safety threshold.
func newObject(namespace, kind, name string, labels, annotations, spec map[string]any) *unstructured.Unstructured {
	metadata := map[string]any{
		"name": name, "namespace": namespace, "labels": labels, "annotations": annotations,
	}
	if kind == "User" {
		metadata["finalizers"] = []any{identityv1alpha1.Finalizer}
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": identityv1alpha1.GroupVersion.String(), "kind": kind, "metadata": metadata, "spec": spec,
	}}
	data, _ := json.Marshal(obj.Object)
	sum := sha256.Sum256(data)
	annotations[AnnotationAppliedHash] = hex.EncodeToString(sum[:12])
	return obj
}

// emailsOf reads emails as strings, or as objects with value, type and primary; the
// first is primary when none is.
func emailsOf(v any) []any {
	var out []any
	primarySeen := false
	for _, e := range listOf(v) {
		email := map[string]any{"type": "work"}
		switch t := e.(type) {
		case string:
			email["value"] = t
		case map[string]any:
			email["value"] = t["value"]
			if typ, ok := t["type"].(string); ok && (typ == "work" || typ == "home" || typ == "other") {
				email["type"] = typ
			}
			if p, _ := t["primary"].(bool); p && !primarySeen {
				email["primary"], primarySeen = true, true
			}
		}
		value, _ := email["value"].(string)
		if at := strings.Index(value, "@"); at <= 0 || at == len(value)-1 || strings.ContainsAny(value, " \t") || len(value) > 320 {
			continue
		}
		if seen := slicesContainValue(out, value); !seen {
			out = append(out, email)
		}
	}
	if len(out) > 0 && !primarySeen {
		out[0].(map[string]any)["primary"] = true
	}
	if len(out) > 16 {
		out = out[:16]
	}
	return out
}

func slicesContainValue(emails []any, value string) bool {
	for _, e := range emails {
		if strings.EqualFold(e.(map[string]any)["value"].(string), value) {
			return true
		}
	}
	return false
}

func stringsOf(v any) []any {
	seen := map[string]bool{}
	var out []string
	for _, e := range listOf(v) {
		if s, ok := e.(string); ok && s != "" && !seen[s] && len(s) <= 256 {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	list := make([]any, len(out))
	for i, s := range out {
		list[i] = s
	}
	return list
}

func listOf(v any) []any {
	switch t := v.(type) {
	case []any:
		return t
	case nil:
		return nil
	case string:
		if t == "" {
			return nil
		}
	}
	return []any{v}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
