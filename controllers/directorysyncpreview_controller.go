package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/directory"
)

// Previews are answered once and deleted previewTTL after they were made; one whose
// DirectorySync has not read its source yet is asked again every previewRetry.
const (
	previewTTL   = 10 * time.Minute
	previewRetry = 2 * time.Second
)

// DirectorySyncPreviewReconciler answers DirectorySyncPreviews from the records the
// directory syncers hold, and deletes them once they have served.
type DirectorySyncPreviewReconciler struct {
	client.Client
	Syncers *Syncers
	// Shards is the part of the work this replica does: it answers the previews of its
	// shard's DirectorySyncs, whose records only its syncers hold.
	Shards *Sharding
}

func (r *DirectorySyncPreviewReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &identityv1alpha1.DirectorySyncPreview{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	left := time.Until(p.CreationTimestamp.Add(previewTTL))
	if left <= 0 {
		return ctrl.Result{}, client.IgnoreNotFound(r.Delete(ctx, p))
	}
	if answers, err := r.answers(ctx, p); !answers || err != nil {
		return ctrl.Result{RequeueAfter: left}, err
	}
	if p.Status.ObservedGeneration == p.Generation && meta.IsStatusConditionTrue(p.Status.Conditions, identityv1alpha1.ConditionReady) {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	before := p.DeepCopy()
	cond := newConditions(&p.Status.CommonStatus, p.Generation)
	p.Status.ObservedGeneration = p.Generation
	retry, err := r.evaluate(ctx, p, cond)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := patchStatus(ctx, r.Client, p, before, p.Status, before.Status); err != nil {
		return ctrl.Result{}, err
	}
	if retry {
		return ctrl.Result{RequeueAfter: min(previewRetry, left)}, nil
	}
	return ctrl.Result{RequeueAfter: left}, nil
}

// answers says whether this replica answers a preview: the shard of its DirectorySync
// does, or the main shard when there is no such DirectorySync.
func (r *DirectorySyncPreviewReconciler) answers(ctx context.Context, p *identityv1alpha1.DirectorySyncPreview) (bool, error) {
	ds := &identityv1alpha1.DirectorySync{}
	err := r.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.DirectorySyncName}, ds)
	if apierrors.IsNotFound(err) {
		return r.Shards.main(), nil
	}
	return err == nil && r.Shards.Owns(ds), err
}

// evaluate fills a preview's status from its DirectorySync's syncer; retry says the
// syncer cannot answer yet.
func (r *DirectorySyncPreviewReconciler) evaluate(ctx context.Context, p *identityv1alpha1.DirectorySyncPreview, cond conditions) (retry bool, err error) {
	ds := &identityv1alpha1.DirectorySync{}
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.DirectorySyncName}
	if err := r.Get(ctx, key, ds); apierrors.IsNotFound(err) {
		cond.stalled(identityv1alpha1.ReasonInvalidSpec, fmt.Sprintf("there is no DirectorySync %s in this namespace", key.Name))
		return false, nil
	} else if err != nil {
		return false, err
	}
	mappings, filter, err := recordRules(ds.Spec.SourceName(), p.Spec.Mapping, p.Spec.Filter)
	if err != nil {
		cond.stalled(identityv1alpha1.ReasonInvalidSpec, err.Error())
		return false, nil
	}
	syncer := r.Syncers.Get(key)
	if syncer == nil {
		cond.progressing(identityv1alpha1.ReasonProgressing, "the DirectorySync "+key.Name+" has not started")
		return true, nil
	}
	preview, err := syncer.Preview(ctx, mappings, filter)
	if errors.Is(err, directory.ErrNotRead) {
		cond.progressing(identityv1alpha1.ReasonProgressing, err.Error())
		return true, nil
	} else if err != nil {
		return false, err
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	p.Status.EvaluatedTime, p.Status.Counts, p.Status.Users, p.Status.Held = &now, preview.Counts, preview.Users, preview.Held
	c := preview.Counts
	cond.ready(identityv1alpha1.ReasonReconciled, fmt.Sprintf("over %d records: %d Users created, %d updated, %d suspended, %d deleted, %d skipped",
		c.Records, c.Created, c.Updated, c.Suspended, c.Deleted, c.Skipped))
	return false, nil
}

// SetupWithManager watches DirectorySyncPreviews.
func (r *DirectorySyncPreviewReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&identityv1alpha1.DirectorySyncPreview{}).Complete(r)
}
