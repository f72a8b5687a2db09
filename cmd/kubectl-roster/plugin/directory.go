package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// previewTimeout bounds the wait for the operator's answer to a DirectorySync preview.
const previewTimeout = 2 * time.Minute

// DirectoryChange is what a changed DirectorySync does to its Users.
type DirectoryChange struct {
	DirectorySync string                         `json:"directorySync"`
	Counts        identityv1alpha1.PreviewCounts `json:"counts"`
	// Held says why the sync would hold its suspensions and deletions.
	Held string `json:"held,omitempty"`
	// Note says what the diff could not evaluate.
	Note string `json:"note,omitempty"`
}

// changes reports whether the DirectorySync's Users change.
func (d DirectoryChange) changes() bool {
	c := d.Counts
	return c.Created+c.Updated+c.Suspended+c.Deleted > 0
}

// syncedPeople is the namespace's Users as the changed DirectorySyncs would leave them.
type syncedPeople struct {
	changed []client.Object
	deleted map[string]bool
}

// previewDirectories asks the operator what each changed DirectorySync's mapping and
// filter would do to its Users, and returns the Users so changed. The operator answers
// from the records it holds; the source is not read.
func (s *session) previewDirectories(ctx context.Context, manifests []client.Object, live []client.Object) (syncedPeople, []DirectoryChange, error) {
	users := map[string]*identityv1alpha1.User{}
	for _, o := range live {
		if u, ok := o.(*identityv1alpha1.User); ok {
			users[u.Name] = u
		}
	}
	out := syncedPeople{deleted: map[string]bool{}}
	var reports []DirectoryChange
	for _, o := range manifests {
		ds, ok := o.(*identityv1alpha1.DirectorySync)
		if !ok {
			continue
		}
		report, previewed, err := s.previewDirectory(ctx, ds)
		if err != nil {
			return syncedPeople{}, nil, fmt.Errorf("DirectorySync %s: %w", ds.Name, err)
		}
		if report == nil {
			continue
		}
		for _, u := range previewed {
			if err := out.apply(u, users[u.Name], s.ns); err != nil {
				return syncedPeople{}, nil, fmt.Errorf("DirectorySync %s, User %s: %w", ds.Name, u.Name, err)
			}
		}
		reports = append(reports, *report)
	}
	return out, reports, nil
}

// previewDirectory previews one DirectorySync manifest against the live one; nil when
// its mapping and filter are unchanged.
func (s *session) previewDirectory(ctx context.Context, ds *identityv1alpha1.DirectorySync) (*DirectoryChange, []identityv1alpha1.PreviewedUser, error) {
	was := &identityv1alpha1.DirectorySync{}
	err := s.client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: ds.Name}, was)
	if apierrors.IsNotFound(err) {
		return &DirectoryChange{DirectorySync: ds.Name, Note: "a new DirectorySync: its Users are known once it has read its source"}, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	report := &DirectoryChange{DirectorySync: ds.Name}
	if !equality.Semantic.DeepEqual(was.Spec.MirrorGroupsAsRoles, ds.Spec.MirrorGroupsAsRoles) {
		report.Note = "the change to mirrorGroupsAsRoles is not evaluated"
	}
	if equality.Semantic.DeepEqual(was.Spec.Mapping, ds.Spec.Mapping) && was.Spec.Filter == ds.Spec.Filter {
		if report.Note == "" {
			return nil, nil, nil
		}
		return report, nil, nil
	}
	p, err := s.askPreview(ctx, ds)
	if err != nil {
		return nil, nil, err
	}
	report.Counts, report.Held = p.Status.Counts, p.Status.Held
	if listed := len(p.Status.Users); listed < int(p.Status.Counts.Created+p.Status.Counts.Updated+p.Status.Counts.Suspended+p.Status.Counts.Deleted+p.Status.Counts.Skipped) {
		report.Note = fmt.Sprintf("the access diff counts the first %d changed Users the operator lists", listed)
	}
	return report, p.Status.Users, nil
}

// askPreview creates a DirectorySyncPreview, waits for the operator's answer, and
// deletes it.
func (s *session) askPreview(ctx context.Context, ds *identityv1alpha1.DirectorySync) (*identityv1alpha1.DirectorySyncPreview, error) {
	p := &identityv1alpha1.DirectorySyncPreview{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, GenerateName: boundedPrefix(ds.Name)},
		Spec: identityv1alpha1.DirectorySyncPreviewSpec{DirectorySyncName: ds.Name, Mapping: ds.Spec.Mapping, Filter: ds.Spec.Filter}}
	if err := s.client.Create(ctx, p); err != nil {
		return nil, err
	}
	defer func() { _ = s.client.Delete(context.WithoutCancel(ctx), p) }()
	var answer error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, previewTimeout, true, func(ctx context.Context) (bool, error) {
		if err := s.client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return false, err
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, identityv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
			answer = fmt.Errorf("the preview was refused: %s", c.Message)
			return true, nil
		}
		return p.Status.ObservedGeneration == p.Generation && meta.IsStatusConditionTrue(p.Status.Conditions, identityv1alpha1.ConditionReady), nil
	})
	if err != nil {
		msg := ""
		if c := meta.FindStatusCondition(p.Status.Conditions, identityv1alpha1.ConditionReady); c != nil {
			msg = ": " + c.Message
		}
		return nil, fmt.Errorf("no answer from the operator to the preview %s%s: %w", p.Name, msg, err)
	}
	return p, answer
}

func boundedPrefix(name string) string {
	if len(name) > 40 {
		name = name[:40]
	}
	return name + "-preview-"
}

// apply records what a preview says of one User.
func (p *syncedPeople) apply(u identityv1alpha1.PreviewedUser, live *identityv1alpha1.User, namespace string) error {
	var next identityv1alpha1.User
	switch {
	case u.Action == identityv1alpha1.PreviewDelete:
		p.deleted[u.Name] = true
		return nil
	case u.Action == identityv1alpha1.PreviewSkip || u.Patch == "":
		return nil
	case u.Action == identityv1alpha1.PreviewCreate || live == nil:
		if err := json.Unmarshal([]byte(u.Patch), &next); err != nil {
			return err
		}
	default:
		current, err := json.Marshal(live)
		if err != nil {
			return err
		}
		patched, err := jsonpatch.MergePatch(current, []byte(u.Patch))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(patched, &next); err != nil {
			return err
		}
	}
	next.Name, next.Namespace = u.Name, namespace
	p.changed = append(p.changed, &next)
	return nil
}
