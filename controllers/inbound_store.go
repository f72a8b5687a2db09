package controllers

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/scim/inbound"
	"github.com/rosterhq/roster/controllers/directory"
)

// AnnotationSCIMResource holds, on a User written from an inbound SCIM push, the
// resource the identity provider sent, so that the endpoint answers the same after a
// restart.
const AnnotationSCIMResource = inbound.AnnotationResource

// syncerSink applies an endpoint's pushes through its DirectorySync's syncer, once the
// syncer runs.
type syncerSink struct {
	syncers *Syncers
	key     types.NamespacedName
}

func (s syncerSink) Apply(ctx context.Context, set connectors.ChangeSet) error {
	if s.syncers == nil {
		return inbound.ErrNotReady
	}
	syncer := s.syncers.Get(s.key)
	if syncer == nil {
		return inbound.ErrNotReady
	}
	return syncer.Apply(ctx, set)
}

// endpointStore keeps an endpoint's users on the DirectorySync's Users (the annotation
// the syncer writes from each record) and its groups in a ConfigMap the DirectorySync
// owns.
type endpointStore struct {
	client client.Client
	key    types.NamespacedName
	uid    types.UID
}

func (s endpointStore) groupsConfigMap() types.NamespacedName {
	return types.NamespacedName{Namespace: s.key.Namespace, Name: s.key.Name + "-scim-groups"}
}

func (s endpointStore) Users(ctx context.Context) ([]string, error) {
	var users identityv1alpha1.UserList
	if err := s.client.List(ctx, &users, client.InNamespace(s.key.Namespace), client.MatchingLabels{directory.LabelDirectorySync: s.key.Name}); err != nil {
		return nil, err
	}
	slices.SortFunc(users.Items, func(a, b identityv1alpha1.User) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	kept := make([]string, 0, len(users.Items))
	for _, u := range users.Items {
		if r := u.Annotations[AnnotationSCIMResource]; r != "" {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

func (s endpointStore) Groups(ctx context.Context) (map[string]string, error) {
	cm := &corev1.ConfigMap{}
	if err := s.client.Get(ctx, s.groupsConfigMap(), cm); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return cm.Data, nil
}

func (s endpointStore) SaveGroups(ctx context.Context, groups map[string]string) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.key.Namespace, Name: s.groupsConfigMap().Name}}
	_, err := controllerutil.CreateOrUpdate(ctx, s.client, cm, func() error {
		cm.Labels = map[string]string{directory.LabelDirectorySync: s.key.Name}
		cm.OwnerReferences = []metav1.OwnerReference{{APIVersion: identityv1alpha1.GroupVersion.String(), Kind: "DirectorySync", Name: s.key.Name, UID: s.uid}}
		cm.Data = groups
		return nil
	})
	return err
}
