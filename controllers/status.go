package controllers

import (
	"context"
	"encoding/json"
	"errors"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// conditions builds an object's conditions for one reconcile: Ready always, Stalled and
// Reconciling only while they are true.
type conditions struct {
	list       *[]metav1.Condition
	generation int64
}

func newConditions(status *identityv1alpha1.CommonStatus, generation int64) conditions {
	return conditions{list: &status.Conditions, generation: generation}
}

func (c conditions) set(typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(c.list, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: truncate(message, 32768), ObservedGeneration: c.generation,
	})
}

// ready sets Ready=True and clears Stalled and Reconciling.
func (c conditions) ready(reason, message string) {
	c.set(identityv1alpha1.ConditionReady, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(c.list, identityv1alpha1.ConditionStalled)
	meta.RemoveStatusCondition(c.list, identityv1alpha1.ConditionReconciling)
}

// progressing sets Ready=False and Reconciling=True: work that will finish on its own.
func (c conditions) progressing(reason, message string) {
	c.set(identityv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	c.set(identityv1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(c.list, identityv1alpha1.ConditionStalled)
}

// stalled sets Ready=False and Stalled=True: a person must act.
func (c conditions) stalled(reason, message string) {
	c.set(identityv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	c.set(identityv1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(c.list, identityv1alpha1.ConditionReconciling)
}

// notReady sets Ready=False without Stalled or Reconciling: waiting on something else.
func (c conditions) notReady(reason, message string) {
	c.set(identityv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	meta.RemoveStatusCondition(c.list, identityv1alpha1.ConditionStalled)
	meta.RemoveStatusCondition(c.list, identityv1alpha1.ConditionReconciling)
}

// patchStatus writes obj's status if it differs from before's: one patch per change,
// none when nothing changed.
func patchStatus(ctx context.Context, c client.Client, obj, before client.Object, status, statusBefore any) error {
	return sendStatus(ctx, c, obj, statusPatch(before, status, statusBefore, false))
}

// patchStatusLocked is patchStatus for a status that more than one replica writes:
// the write is refused (a conflict) if the object changed since it was read.
func patchStatusLocked(ctx context.Context, c client.Client, obj, before client.Object, status, statusBefore any) error {
	return sendStatus(ctx, c, obj, statusPatch(before, status, statusBefore, true))
}

// sendStatus sends a status patch; nil, the status did not change and nothing is sent.
func sendStatus(ctx context.Context, c client.Client, obj client.Object, patch client.Patch) error {
	if patch == nil {
		return nil
	}
	return c.Status().Patch(ctx, obj, patch)
}

// statusPatch is the merge patch from before of a status write, nil when the status did
// not change; locked, it is refused (a conflict) if the object changed since it was read.
func statusPatch(before client.Object, status, statusBefore any, locked bool) client.Patch {
	if equality.Semantic.DeepEqual(status, statusBefore) {
		return nil
	}
	patch := statusMergePatch{status: status, statusBefore: statusBefore, locked: locked}
	if locked {
		patch.resourceVersion = before.GetResourceVersion()
	}
	return patch
}

// statusMergePatch is a JSON merge patch computed from an object's status alone: a
// status subresource takes nothing else, and the spec and metadata need not be encoded
// and compared for every write.
type statusMergePatch struct {
	status, statusBefore any
	// locked: the write is refused if the object changed since its resourceVersion.
	locked          bool
	resourceVersion string
}

func (p statusMergePatch) Type() types.PatchType { return types.MergePatchType }

func (p statusMergePatch) Data(client.Object) ([]byte, error) {
	if p.locked && p.resourceVersion == "" {
		return nil, errors.New("a locked status write needs the resourceVersion of the object it was read from")
	}
	before, err := json.Marshal(p.statusBefore)
	if err != nil {
		return nil, err
	}
	after, err := json.Marshal(p.status)
	if err != nil {
		return nil, err
	}
	diff, err := jsonpatch.CreateMergePatch(before, after)
	if err != nil {
		return nil, err
	}
	type lock struct {
		ResourceVersion string `json:"resourceVersion"`
	}
	body := struct {
		Metadata *lock           `json:"metadata,omitempty"`
		Status   json.RawMessage `json:"status"`
	}{Status: diff}
	if p.locked {
		body.Metadata = &lock{ResourceVersion: p.resourceVersion}
	}
	return json.Marshal(body)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-len("…")] + "…"
}
