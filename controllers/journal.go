package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// LabelJournal marks a ConfigMap that keeps one record of an AppConnection's journal:
// what Roster sent to an app that cannot list its accounts.
const LabelJournal = "identity.roster.dev/journal"

// The keys of a journal record's ConfigMap.
const (
	keyJournalKey   = "key"
	keyJournalValue = "value"
)

// appJournal keeps an AppConnection's journal in the API server, a ConfigMap per record
// named <appconnection>-journal-<hash of the key>, owned by the AppConnection, so that
// it goes with it and another replica that takes over reads the same.
type appJournal struct {
	client client.Client // writes
	live   client.Reader // reads, straight from the API server
	key    types.NamespacedName
	uid    types.UID
}

var _ connectors.Journal = appJournal{}

func (j appJournal) name(key string) string {
	sum := sha256.Sum256([]byte(key))
	return j.key.Name + "-journal-" + hex.EncodeToString(sum[:10])
}

func (j appJournal) Entries(ctx context.Context) (map[string][]byte, error) {
	var cms corev1.ConfigMapList
	if err := j.live.List(ctx, &cms, client.InNamespace(j.key.Namespace), client.HasLabels{LabelJournal}); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, cm := range cms.Items {
		owned := len(cm.OwnerReferences) == 1 && cm.OwnerReferences[0].UID == j.uid
		if key := cm.Data[keyJournalKey]; owned && cm.Name == j.name(key) {
			out[key] = []byte(cm.Data[keyJournalValue])
		}
	}
	return out, nil
}

func (j appJournal) Put(ctx context.Context, key string, value []byte) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: j.key.Namespace, Name: j.name(key),
			Labels:          map[string]string{LabelJournal: "true"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: identityv1alpha1.GroupVersion.String(), Kind: "AppConnection", Name: j.key.Name, UID: j.uid}}},
		Data: map[string]string{keyJournalKey: key, keyJournalValue: string(value)},
	}
	err := j.client.Update(ctx, cm)
	if apierrors.IsNotFound(err) {
		err = j.client.Create(ctx, cm)
		if apierrors.IsAlreadyExists(err) {
			err = j.client.Update(ctx, cm)
		}
	}
	if err != nil {
		return fmt.Errorf("keeping what was sent in ConfigMap %s: %w", cm.Name, err)
	}
	return nil
}

func (j appJournal) Remove(ctx context.Context, key string) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: j.key.Namespace, Name: j.name(key)}}
	if err := j.client.Delete(ctx, cm); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("forgetting what was sent in ConfigMap %s: %w", cm.Name, err)
	}
	return nil
}

// journaledSecrets is the SecretReader a TargetFactory gets: it also keeps the
// AppConnection's journal.
type journaledSecrets struct {
	*secretReader
	journal appJournal
}

func (s journaledSecrets) Journal() connectors.Journal { return s.journal }
