package plugin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers"
	"github.com/rosterhq/roster/controllers/safety"
)

// Change is one person's access to one app that a change of manifests changes.
type Change struct {
	App      string `json:"app"`
	User     string `json:"user"`
	UserName string `json:"userName"`
	// What is gains (a new account), loses (the account is deprovisioned) or changes.
	What          string   `json:"change"`
	GroupsAdded   []string `json:"groupsAdded,omitempty"`
	GroupsRemoved []string `json:"groupsRemoved,omitempty"`
	AppRole       string   `json:"appRole,omitempty"`
	License       string   `json:"license,omitempty"`
}

// Held is an app whose deprovisions the safety threshold would hold.
type Held struct {
	App           string `json:"app"`
	Deprovisions  int    `json:"deprovisions"`
	AlreadyInSpan int    `json:"alreadyInWindow"`
	MaxCount      *int32 `json:"maxCount,omitempty"`
	MaxPercent    *int32 `json:"maxPercent,omitempty"`
}

// Diff is what a change does to people's access.
type Diff struct {
	// Directories are the changed DirectorySyncs, with what they do to their Users.
	Directories []DirectoryChange `json:"directories,omitempty"`
	Changes     []Change          `json:"changes"`
	Held        []Held            `json:"held"`
}

// changes reports whether anything changes: someone's access, or a DirectorySync's Users.
func (d Diff) changes() bool {
	return len(d.Changes) > 0 || slices.ContainsFunc(d.Directories, DirectoryChange.changes)
}

func (s *session) diffCommand() *cobra.Command {
	var files []string
	var output string
	cmd := &cobra.Command{Use: "diff -f DIR", Short: "Who gains and who loses which app, group, role and licence if the manifests were applied, and what the safety threshold would hold",
		Long: "Evaluates the manifests against the live namespace with the operator's own code (Role rules, selectors, grants, " +
			"validity) and prints the change to people's access. A changed DirectorySync mapping or filter is evaluated by the " +
			"operator over the records it holds (a DirectorySyncPreview, which needs the preview verb on that DirectorySync). " +
			"Exit code 0: no change; 1: changes; 2: an error.",
		Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			changed, err := s.readManifests(files)
			if err != nil {
				return err
			}
			live, err := s.live(cmd)
			if err != nil {
				return err
			}
			synced, directories, err := s.previewDirectories(cmd.Context(), changed, live)
			if err != nil {
				return err
			}
			d, err := diff(s.scheme, live, append(synced.changed, changed...), synced.deleted)
			if err != nil {
				return err
			}
			d.Directories = directories
			if err := printDiff(s.out, d, output); err != nil {
				return err
			}
			if d.changes() {
				return errChanges
			}
			return nil
		}}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifests: files or directories of YAML")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, markdown (for a pull request comment) or json")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// live are the namespace's objects that decide access.
func (s *session) live(cmd *cobra.Command) ([]client.Object, error) {
	var out []client.Object
	lists := []client.ObjectList{&identityv1alpha1.UserList{}, &identityv1alpha1.RoleList{}, &identityv1alpha1.AppAssignmentList{}, &identityv1alpha1.AppConnectionList{}}
	for _, list := range lists {
		if err := s.client.List(cmd.Context(), list, client.InNamespace(s.ns)); err != nil {
			return nil, err
		}
		items, err := metaItems(list)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	return out, nil
}

func metaItems(list client.ObjectList) ([]client.Object, error) {
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]client.Object, len(items))
	for i, item := range items {
		out[i] = item.(client.Object)
	}
	return out, nil
}

// merge puts changed objects in place of the live ones of the same kind and name.
func merge(live, changed []client.Object) []client.Object {
	key := func(o client.Object) string { return fmt.Sprintf("%T/%s", o, o.GetName()) }
	byKey := map[string]int{}
	out := slices.Clone(live)
	for i, o := range out {
		byKey[key(o)] = i
	}
	for _, o := range changed {
		if i, ok := byKey[key(o)]; ok {
			o.SetResourceVersion(out[i].GetResourceVersion())
			out[i] = o
			continue
		}
		byKey[key(o)] = len(out)
		out = append(out, o)
	}
	return out
}

// readManifests reads Roster objects from YAML files and directories, in the session's
// namespace; other kinds are left out.
func (s *session) readManifests(paths []string) ([]client.Object, error) {
	var out []client.Object
	for _, p := range paths {
		files := []string{p}
		if info, err := os.Stat(p); err != nil {
			return nil, err
		} else if info.IsDir() {
			yml, _ := filepath.Glob(filepath.Join(p, "*.yaml"))
			alt, _ := filepath.Glob(filepath.Join(p, "*.yml"))
			files = append(yml, alt...)
		}
		for _, f := range files {
			objs, err := s.decodeFile(f)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

func (s *session) decodeFile(path string) ([]client.Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []client.Object
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, err
		}
		if len(u.Object) == 0 || u.GroupVersionKind().Group != identityv1alpha1.GroupVersion.Group {
			continue
		}
		typed, err := s.scheme.New(u.GroupVersionKind())
		if err != nil {
			return nil, err
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
			return nil, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
		obj := typed.(client.Object)
		if ns := obj.GetNamespace(); ns != "" && ns != s.ns {
			return nil, fmt.Errorf("%s %s is for namespace %s, not %s", u.GetKind(), u.GetName(), ns, s.ns)
		}
		obj.SetNamespace(s.ns)
		out = append(out, obj)
	}
}

// holdingKey is one person's access to one app.
type holdingKey struct{ app, user string }

// diff evaluates access before and after the change (changed objects, and Users
// deleted) and compares.
func diff(scheme *runtime.Scheme, live, changed []client.Object, deleted map[string]bool) (Diff, error) {
	now := time.Now()
	before, err := controllers.Evaluate(scheme, live, now)
	if err != nil {
		return Diff{}, fmt.Errorf("evaluating the live objects: %w", err)
	}
	merged := slices.DeleteFunc(merge(live, changed), func(o client.Object) bool {
		_, user := o.(*identityv1alpha1.User)
		return user && deleted[o.GetName()]
	})
	after, err := controllers.Evaluate(scheme, merged, now)
	if err != nil {
		return Diff{}, fmt.Errorf("evaluating the change: %w", err)
	}
	was, will := map[holdingKey]controllers.Holding{}, map[holdingKey]controllers.Holding{}
	for _, h := range before {
		if h.Active {
			was[holdingKey{h.App, h.User}] = h
		}
	}
	for _, h := range after {
		if h.Active {
			will[holdingKey{h.App, h.User}] = h
		}
	}
	d := Diff{Changes: []Change{}, Held: []Held{}}
	losses := map[string]int{}
	for k, h := range will {
		old, had := was[k]
		c := Change{App: k.app, User: k.user, UserName: h.UserName}
		switch {
		case !had:
			c.What, c.GroupsAdded, c.AppRole, c.License = "gains", h.Groups, h.AppRole, h.License
		default:
			c.What, c.GroupsAdded, c.GroupsRemoved = "changes", minus(h.Groups, old.Groups), minus(old.Groups, h.Groups)
			if h.AppRole != old.AppRole {
				c.AppRole = h.AppRole
			}
			if h.License != old.License {
				c.License = h.License
			}
			if len(c.GroupsAdded)+len(c.GroupsRemoved) == 0 && c.AppRole == "" && c.License == "" {
				continue
			}
		}
		d.Changes = append(d.Changes, c)
	}
	for k, h := range was {
		if _, keeps := will[k]; !keeps {
			d.Changes = append(d.Changes, Change{App: k.app, User: k.user, UserName: h.UserName, What: "loses", GroupsRemoved: h.Groups})
			losses[k.app]++
		}
	}
	slices.SortFunc(d.Changes, func(a, b Change) int {
		return strings.Compare(a.App+"\x00"+a.UserName, b.App+"\x00"+b.UserName)
	})
	d.Held = held(merged, losses, was)
	return d, nil
}

// held names the apps whose deprovisions the safety threshold would hold, counting
// those already sent within its window.
func held(objs []client.Object, losses map[string]int, was map[holdingKey]controllers.Holding) []Held {
	out := []Held{}
	for _, o := range objs {
		conn, ok := o.(*identityv1alpha1.AppConnection)
		if !ok || losses[conn.Name] == 0 {
			continue
		}
		limit := conn.Spec.SafetyThreshold
		if limit == nil {
			maxCount := int32(25) // the CRD's default
			limit = &identityv1alpha1.SafetyThreshold{MaxCount: &maxCount}
		}
		sent := 0
		for _, c := range conn.Status.RecentDeprovisions {
			sent += int(c.Count)
		}
		managed := int(conn.Status.Accounts.Managed)
		if managed == 0 {
			for k := range was {
				if k.app == conn.Name {
					managed++
				}
			}
		}
		if n := losses[conn.Name]; safety.Exceeds(sent+n, managed+sent, limit.MaxCount, limit.MaxPercent) {
			out = append(out, Held{App: conn.Name, Deprovisions: n, AlreadyInSpan: sent, MaxCount: limit.MaxCount, MaxPercent: limit.MaxPercent})
		}
	}
	slices.SortFunc(out, func(a, b Held) int { return strings.Compare(a.App, b.App) })
	return out
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y string) bool { return strings.EqualFold(x, y) }) {
			out = append(out, x)
		}
	}
	return out
}

// printDiff writes a diff as a table, Markdown or JSON.
func printDiff(out io.Writer, d Diff, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	case "markdown":
		gains, loses := count(d, "gains"), count(d, "loses")
		fmt.Fprintf(out, "**Roster access diff**: %d gain, %d lose, %d change access.\n\n", gains, loses, len(d.Changes)-gains-loses)
		printDirectories(out, d.Directories, "- DirectorySync **%s**: %s\n", "\n> :warning: **DirectorySync %s**: %s\n")
		if len(d.Changes) > 0 {
			fmt.Fprintln(out, "| app | person | change | detail |\n|---|---|---|---|")
			for _, c := range d.Changes {
				fmt.Fprintf(out, "| %s | %s | %s | %s |\n", c.App, c.UserName, c.What, detail(c))
			}
		}
		for _, h := range d.Held {
			fmt.Fprintf(out, "\n> :warning: **%s**: %s\n", h.App, heldMessage(h))
		}
		return nil
	case "table":
		printDirectories(out, d.Directories, "DirectorySync %s: %s\n", "HELD DirectorySync %s: %s\n")
		if len(d.Changes) == 0 {
			fmt.Fprintln(out, "No change to anyone's access.")
			return nil
		}
		var rows [][]string
		for _, c := range d.Changes {
			rows = append(rows, []string{c.App, c.UserName, c.What, dash(detail(c))})
		}
		table(out, "APP\tUSER\tCHANGE\tDETAIL", rows)
		for _, h := range d.Held {
			fmt.Fprintf(out, "\nHELD %s: %s\n", h.App, heldMessage(h))
		}
		return nil
	}
	return fmt.Errorf("unknown output %q: table, markdown or json", format)
}

// printDirectories writes what each changed DirectorySync does, and why its sync would
// hold it, in the formats given (the DirectorySync's name, then the message).
func printDirectories(out io.Writer, dirs []DirectoryChange, lineFormat, heldFormat string) {
	for _, dc := range dirs {
		fmt.Fprintf(out, lineFormat, dc.DirectorySync, directoryMessage(dc))
		if dc.Held != "" {
			fmt.Fprintf(out, heldFormat, dc.DirectorySync, dc.Held)
		}
	}
	if len(dirs) > 0 {
		fmt.Fprintln(out)
	}
}

func count(d Diff, what string) int {
	n := 0
	for _, c := range d.Changes {
		if c.What == what {
			n++
		}
	}
	return n
}

func detail(c Change) string {
	var parts []string
	if len(c.GroupsAdded) > 0 {
		parts = append(parts, "+groups "+strings.Join(c.GroupsAdded, ","))
	}
	if len(c.GroupsRemoved) > 0 {
		parts = append(parts, "-groups "+strings.Join(c.GroupsRemoved, ","))
	}
	if c.AppRole != "" {
		parts = append(parts, "app role "+c.AppRole)
	}
	if c.License != "" {
		parts = append(parts, "licence "+c.License)
	}
	return strings.Join(parts, "; ")
}

func directoryMessage(d DirectoryChange) string {
	c := d.Counts
	if c.Records == 0 && d.Note != "" {
		return d.Note
	}
	msg := fmt.Sprintf("%d Users created, %d updated, %d suspended, %d deleted, %d skipped (over %d records)", c.Created, c.Updated, c.Suspended, c.Deleted, c.Skipped, c.Records)
	if d.Note != "" {
		msg += "; " + d.Note
	}
	return msg
}

func heldMessage(h Held) string {
	limit := ""
	if h.MaxCount != nil {
		limit = fmt.Sprintf("maxCount %d", *h.MaxCount)
	}
	if h.MaxPercent != nil {
		limit = strings.TrimPrefix(limit+fmt.Sprintf(", maxPercent %d", *h.MaxPercent), ", ")
	}
	return fmt.Sprintf("%d deprovisions (with %d already in the window) exceed the safety threshold (%s): the plan would be held until approved", h.Deprovisions, h.AlreadyInSpan, limit)
}
