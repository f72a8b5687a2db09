package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/scim"
	"github.com/rosterhq/roster/connectors/scim/inbound"
	"github.com/rosterhq/roster/controllers/directory"
	"github.com/rosterhq/roster/controllers/safety"
	"github.com/rosterhq/roster/test/testenv"
)

// TestForgedSCIMAnnotationsAreReadBackSafely loads an inbound SCIM endpoint from what an
// earlier version kept (on Users, and in a groups ConfigMap) after a namespace editor
// forged it, and uses it as an identity provider would.
func TestForgedSCIMAnnotationsAreReadBackSafely(t *testing.T) {
	forged := []string{
		`{"id":"u1","userName":"ada","groups":["x"],"password":"kept-by-an-older-version"}`,
		`{"id":"u2","userName":"grace","groups":[7,{"value":3},{"value":"g1"}]}`,
		`{"id":"u3","userName":"linus","groups":"g1"}`,
		`{"id":["u4"],"userName":"nobody"}`,
		`{"id":"u5"}`,
		`not json`,
	}
	key := types.NamespacedName{Namespace: "acme", Name: "okta"}
	objs := []client.Object{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "okta-scim-groups"},
		Data: map[string]string{"g1": `{"id":"g1","displayName":"staff"}`, "g2": `{"id":"g9","displayName":7}`, "g3": `[]`}}}
	for i, a := range forged {
		objs = append(objs, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: string(rune('a' + i)),
			Labels:      map[string]string{directory.LabelDirectorySync: "okta"},
			Annotations: map[string]string{AnnotationSCIMResource: a}}})
	}
	c := fake.NewClientBuilder().WithScheme(testenv.Scheme()).WithObjects(objs...).Build()
	st := inbound.New(syncerSink{key: key}, endpointStore{client: c, kept: c, live: c, key: key, uid: "uid"})
	if err := st.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Records) != 3 || len(snap.Groups) != 1 {
		t.Fatalf("read back %d users and %d groups, want the 3 users with an id and userName and the 1 valid group", len(snap.Records), len(snap.Groups))
	}
	for _, r := range snap.Records {
		if r.ID == "u2" && (len(r.Groups) != 1 || r.Groups[0] != "g1") {
			t.Fatalf("grace's groups read back as %v, want only the valid entry g1", r.Groups)
		}
	}
	if ada, _ := st.Get(context.Background(), scim.Users, "u1"); ada["password"] != nil {
		t.Fatal("a password kept in an annotation by an older version was read back")
	}
	g, err := st.Get(context.Background(), scim.Groups, "g1")
	if err != nil || len(g["members"].([]any)) != 1 {
		t.Fatalf("group g1 = %v, %v; want grace as its one member", g, err)
	}
	var kept corev1.ConfigMapList
	if err := c.List(context.Background(), &kept, client.InNamespace("acme"), client.HasLabels{LabelSCIMObject}); err != nil || len(kept.Items) != 4 {
		t.Fatalf("kept %d objects (%v), want the 3 users and the group, one ConfigMap each", len(kept.Items), err)
	}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "acme", Name: "okta-scim-groups"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the earlier groups ConfigMap is still there (%v)", err)
	}
	g, err = st.Update(context.Background(), scim.Groups, "g1", "", func(r scim.Resource) error {
		r["members"] = []any{map[string]any{"value": "u1"}, "u3", 5}
		return nil
	})
	if err != nil || len(g["members"].([]any)) != 1 {
		t.Fatalf("a membership change with forged entries = %v, %v; want ada alone (and no panic)", g, err)
	}
}

type crashingWorker struct{ runs int }

func (w *crashingWorker) Run(ctx context.Context) error {
	w.runs++
	crashes := safety.NewCrashes(func() {})
	crashes.Run(func() { var pages []int; _ = pages[len(pages)] }) // a runtime error, as a bug would make
	return crashes.Err()
}

func TestAWorkerThatPanicsStopsAloneAndWaitsOutABackoff(t *testing.T) {
	reported := make(chan types.NamespacedName, 1)
	w := newWorkers[*crashingWorker]("test", logr.Discard(), func(k types.NamespacedName) { reported <- k })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	key := types.NamespacedName{Namespace: "acme", Name: "app"}
	worker := &crashingWorker{}
	if _, err := w.ensure(ctx, key, always, func(*crashingWorker) {}, func() *crashingWorker { return worker }); err != nil {
		t.Fatal(err)
	}
	if got := <-reported; got != key {
		t.Fatalf("crash reported for %v, want %v", got, key)
	}
	_, err := w.ensure(ctx, key, always, func(*crashingWorker) {}, func() *crashingWorker { return worker })
	var status identityv1alpha1.CommonStatus
	wait, isCrash := crashed(newConditions(&status, 1), err)
	if !isCrash || wait <= 0 || !errors.As(err, new(*safety.Crash)) {
		t.Fatalf("ensure right after a crash = %v, want a CrashedError with a backoff", err)
	}
	if c := status.Conditions; len(c) == 0 || c[0].Reason != identityv1alpha1.ReasonInternalError {
		t.Fatalf("the object's conditions after a crash = %+v, want Ready False reason InternalError", c)
	}
	if worker.runs != 1 {
		t.Fatalf("the worker ran %d times during its backoff, want 1", worker.runs)
	}
	w.mu.Lock()
	w.crashes[key].at = time.Now().Add(-time.Hour)
	w.mu.Unlock()
	if _, err := w.ensure(ctx, key, always, func(*crashingWorker) {}, func() *crashingWorker { return worker }); err != nil {
		t.Fatalf("ensure after the backoff = %v, want the worker started again", err)
	}
	<-reported
	if worker.runs != 2 {
		t.Fatalf("the worker ran %d times, want 2", worker.runs)
	}
}
