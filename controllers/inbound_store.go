package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/scim"
	"github.com/rosterhq/roster/connectors/scim/inbound"
	"github.com/rosterhq/roster/controllers/directory"
)

// LabelSCIMObject marks a ConfigMap that keeps one user or group an identity provider
// pushed to a DirectorySync's inbound SCIM endpoint; its value is the object's kind.
const LabelSCIMObject = "identity.roster.dev/scim-object"

// keptObjectsCache caches the ConfigMaps that keep pushed objects, and no other: the
// manager's cache holds only ConfigMaps' metadata, and a cache of every ConfigMap would
// hold every namespace's configuration in the operator's memory.
func keptObjectsCache(mgr ctrl.Manager, namespaces map[string]cache.Config) (cache.Cache, error) {
	labelled, err := labels.NewRequirement(LabelSCIMObject, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	return cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient: mgr.GetHTTPClient(), Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		DefaultNamespaces: namespaces, DefaultLabelSelector: labels.NewSelector().Add(*labelled),
		DefaultTransform: cache.TransformStripManagedFields(),
	})
}

// AnnotationSCIMResource held, on a User written from an inbound SCIM push, the resource
// the identity provider sent, before pushes were kept in ConfigMaps of their own; an
// endpoint that finds no ConfigMap reads them from there once.
const AnnotationSCIMResource = "identity.roster.dev/scim-resource"

// The keys of a kept object's ConfigMap.
const (
	keyID       = "id"
	keyVersion  = "version"
	keyResource = "resource"
	keyMembers  = "members" // a group's members, one user id per line
)

// validID is what an object id must be to name its ConfigMap: the ids the endpoint
// makes are lower-case UUIDs.
var validID = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// endpointStore keeps an endpoint's users and groups in the API server, one ConfigMap
// each, owned by the DirectorySync, so that every replica reads and writes the same.
// Writes name the resourceVersion they replace.
type endpointStore struct {
	client client.Client // reads from the cache, writes to the API server
	kept   client.Reader // reads the kept objects' ConfigMaps from their cache
	live   client.Reader // reads from the API server
	key    types.NamespacedName
	uid    types.UID
}

var _ inbound.Store = endpointStore{}

func (s endpointStore) objectName(kind inbound.Kind, id string) string {
	return s.key.Name + "-scim-" + strings.ToLower(string(kind)) + "-" + id
}

func (s endpointStore) Load(ctx context.Context) ([]inbound.Object, error) {
	var cms corev1.ConfigMapList
	if err := s.kept.List(ctx, &cms, client.InNamespace(s.key.Namespace),
		client.MatchingLabels{directory.LabelDirectorySync: s.key.Name}, client.HasLabels{LabelSCIMObject}); err != nil {
		return nil, err
	}
	objs := make([]inbound.Object, 0, len(cms.Items))
	for i := range cms.Items {
		if o, ok := objectOf(&cms.Items[i]); ok {
			objs = append(objs, o)
		}
	}
	if len(objs) > 0 {
		return objs, nil
	}
	return s.migrate(ctx)
}

func (s endpointStore) Get(ctx context.Context, kind inbound.Kind, id string) (inbound.Object, error) {
	cm := &corev1.ConfigMap{}
	if err := s.live.Get(ctx, types.NamespacedName{Namespace: s.key.Namespace, Name: s.objectName(kind, id)}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return inbound.Object{}, connectors.ErrNotFound
		}
		return inbound.Object{}, err
	}
	o, ok := objectOf(cm)
	if !ok || o.Kind != kind || o.ID != id {
		return inbound.Object{}, connectors.ErrNotFound
	}
	return o, nil
}

func (s endpointStore) Put(ctx context.Context, o inbound.Object) (inbound.Object, error) {
	if !validID.MatchString(o.ID) {
		return o, fmt.Errorf("%s id %q cannot name a ConfigMap", o.Kind, o.ID)
	}
	data, err := json.Marshal(o.Resource)
	if err != nil {
		return o, err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.key.Namespace, Name: s.objectName(o.Kind, o.ID), ResourceVersion: o.Revision,
			Labels:          map[string]string{directory.LabelDirectorySync: s.key.Name, LabelSCIMObject: string(o.Kind)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: identityv1alpha1.GroupVersion.String(), Kind: "DirectorySync", Name: s.key.Name, UID: s.uid}}},
		Data: map[string]string{keyID: o.ID, keyVersion: strconv.FormatInt(o.Version, 10), keyResource: string(data)},
	}
	if o.Kind == inbound.KindGroup {
		cm.Data[keyMembers] = strings.Join(o.Members, "\n")
	}
	if o.Version == 1 {
		cm.ResourceVersion = ""
		err = s.client.Create(ctx, cm)
	} else {
		err = s.client.Update(ctx, cm)
	}
	switch {
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
		return o, inbound.ErrStale
	case apierrors.IsNotFound(err):
		return o, connectors.ErrNotFound
	case apierrors.IsRequestEntityTooLargeError(err), apierrors.IsInvalid(err):
		return o, &scim.PatchError{ScimType: scim.ErrInvalidValue, Detail: fmt.Sprintf("the %s is too large to keep", strings.ToLower(string(o.Kind)))}
	case err != nil:
		return o, err
	}
	o.Revision = cm.ResourceVersion
	return o, nil
}

func (s endpointStore) Delete(ctx context.Context, o inbound.Object) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.key.Namespace, Name: s.objectName(o.Kind, o.ID)}}
	err := s.client.Delete(ctx, cm, client.Preconditions{ResourceVersion: &o.Revision})
	switch {
	case apierrors.IsConflict(err):
		return inbound.ErrStale
	case apierrors.IsNotFound(err):
		return connectors.ErrNotFound
	}
	return err
}

// objectOf reads a kept object from its ConfigMap; false if it is not one.
func objectOf(cm *corev1.ConfigMap) (inbound.Object, bool) {
	o := inbound.Object{Kind: inbound.Kind(cm.Labels[LabelSCIMObject]), ID: cm.Data[keyID], Revision: cm.ResourceVersion}
	version, err := strconv.ParseInt(cm.Data[keyVersion], 10, 64)
	if err != nil || json.Unmarshal([]byte(cm.Data[keyResource]), &o.Resource) != nil {
		return o, false
	}
	o.Version = version
	if members := cm.Data[keyMembers]; members != "" {
		o.Members = strings.Split(members, "\n")
	}
	return o, validID.MatchString(o.ID)
}

// migrate keeps, once, what an earlier version kept on the DirectorySync's Users and in
// its <name>-scim-groups ConfigMap, as objects of their own.
func (s endpointStore) migrate(ctx context.Context) ([]inbound.Object, error) {
	var users identityv1alpha1.UserList
	if err := s.client.List(ctx, &users, client.InNamespace(s.key.Namespace), client.MatchingLabels{directory.LabelDirectorySync: s.key.Name}); err != nil {
		return nil, err
	}
	legacy := &corev1.ConfigMap{}
	legacyKey := types.NamespacedName{Namespace: s.key.Namespace, Name: s.key.Name + "-scim-groups"}
	if err := s.live.Get(ctx, legacyKey, legacy); client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	var kept []string
	for _, u := range users.Items {
		if r := u.Annotations[AnnotationSCIMResource]; r != "" {
			kept = append(kept, r)
		}
	}
	objs := inbound.Legacy(kept, legacy.Data)
	moved := make([]inbound.Object, 0, len(objs))
	for _, o := range objs {
		if !validID.MatchString(o.ID) {
			continue
		}
		saved, err := s.Put(ctx, o)
		if errors.Is(err, inbound.ErrStale) {
			saved, err = s.Get(ctx, o.Kind, o.ID) // another replica kept it first
		}
		if err != nil {
			return nil, fmt.Errorf("keeping the inbound SCIM %s %s: %w", strings.ToLower(string(o.Kind)), o.ID, err)
		}
		moved = append(moved, saved)
	}
	if legacy.Name != "" {
		if err := s.client.Delete(ctx, legacy); client.IgnoreNotFound(err) != nil {
			return nil, err
		}
	}
	slices.SortFunc(moved, func(a, b inbound.Object) int { return strings.Compare(a.ID, b.ID) })
	return moved, nil
}

// syncerSink applies an endpoint's pushes through its DirectorySync's syncer, where it
// runs in this process (the leader). Elsewhere a push is kept, and the leader's syncer
// applies it as it follows the endpoint.
type syncerSink struct {
	syncers *Syncers
	key     types.NamespacedName
}

func (s syncerSink) Apply(ctx context.Context, set connectors.ChangeSet) error {
	if s.syncers == nil {
		return nil
	}
	if syncer := s.syncers.Get(s.key); syncer != nil {
		return syncer.Apply(ctx, set)
	}
	return nil
}
