package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/controllers/notify"
)

// notifierStatusEvery is the most often a Notifier's delivery figures are written.
const notifierStatusEvery = 2 * time.Second

// NotifierReconciler runs each Notifier in the hub with its channel, and writes its
// delivery figures.
type NotifierReconciler struct {
	client.Client
	Hub     *notify.Hub
	changes chan event.GenericEvent
	// Shards is the part of the work this replica does. Every replica delivers the news
	// it makes (its apps', its directories'); the main shard writes the figures.
	Shards *Sharding
	// ownWrites: this reconciler's status writes on their way to the cache.
	ownWrites *ownWrites
}

func (r *NotifierReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	n := &identityv1alpha1.Notifier{}
	if err := r.Get(ctx, req.NamespacedName, n); err != nil {
		r.Hub.Remove(req.NamespacedName)
		forgetConditions("Notifier", req.NamespacedName)
		r.ownWrites.forget(req.NamespacedName)
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.ownWrites.behind(n) {
		return waitForOwnWrite, nil
	}
	defer r.ownWrites.wrote(n, n.ResourceVersion)
	before := n.DeepCopy()
	cond := newConditions(&n.Status.CommonStatus, n.Generation)
	n.Status.ObservedGeneration = n.Generation
	cfg, kind, err := r.config(ctx, n)
	n.Status.Channel = kind
	switch {
	case errors.Is(err, connectors.ErrSecretNotFound):
		r.Hub.Remove(req.NamespacedName)
		cond.stalled(identityv1alpha1.ReasonSecretNotFound, err.Error()+"; events are not gathered until it is there")
	case err != nil:
		r.Hub.Remove(req.NamespacedName)
		cond.stalled(identityv1alpha1.ReasonInvalidSpec, err.Error())
	default:
		r.Hub.Set(req.NamespacedName, cfg, notify.Stats{Delivered: n.Status.Delivered, Messages: n.Status.Messages, Failed: n.Status.Failed})
		stats, _ := r.Hub.Stats(req.NamespacedName)
		deliveryStatus(n, stats, cond)
	}
	if !r.Shards.main() {
		return ctrl.Result{RequeueAfter: secretRecheck}, nil
	}
	if err := patchStatus(ctx, r.Client, n, before, n.Status, before.Status); err != nil {
		return ctrl.Result{}, err
	}
	reportConditions("Notifier", req.NamespacedName, n.Status.Conditions)
	return ctrl.Result{RequeueAfter: secretRecheck}, nil
}

// config builds a Notifier's dispatcher configuration, its channel's Secrets read.
func (r *NotifierReconciler) config(ctx context.Context, n *identityv1alpha1.Notifier) (notify.Config, string, error) {
	channel, kind, err := notify.NewChannel(ctx, &n.Spec, newSecretReader(r.Client, n.Namespace))
	if err != nil {
		return notify.Config{}, kind, err
	}
	templates, err := notify.CompileTemplates(n.Spec.Templates)
	if err != nil {
		return notify.Config{}, kind, err
	}
	cfg := notify.Config{Channel: channel, Templates: templates, Quiet: 5 * time.Second, MaxWait: time.Minute,
		Interval: time.Minute / time.Duration(cmp.Or(n.Spec.MessagesPerMinute, 20))}
	if d := n.Spec.Digest.Quiet; d != nil {
		cfg.Quiet = d.Duration
	}
	if d := n.Spec.Digest.MaxWait; d != nil {
		cfg.MaxWait = d.Duration
	}
	if len(n.Spec.Events) > 0 {
		cfg.Events = map[identityv1alpha1.NotificationEvent]bool{}
		for _, e := range n.Spec.Events {
			cfg.Events[e] = true
		}
	}
	if f := n.Spec.Filter; f != nil {
		cfg.Filter.Apps, cfg.Filter.Roles = set(f.Apps), set(f.Roles)
		if f.Users != nil {
			if cfg.Filter.Users, err = metav1.LabelSelectorAsSelector(f.Users); err != nil {
				return notify.Config{}, kind, fmt.Errorf("filter.users: %w", err)
			}
		}
	}
	return cfg, kind, nil
}

func set(items []string) map[string]bool {
	out := make(map[string]bool, len(items))
	for _, i := range items {
		out[i] = true
	}
	return out
}

// deliveryStatus writes a Notifier's figures, and Ready from its latest delivery.
func deliveryStatus(n *identityv1alpha1.Notifier, s notify.Stats, cond conditions) {
	n.Status.Delivered, n.Status.Messages, n.Status.Failed, n.Status.Pending = s.Delivered, s.Messages, s.Failed, max(s.Pending, 0)
	n.Status.LastDeliveryTime, n.Status.LastFailureTime = statusTime(s.LastDelivery), statusTime(s.LastFailure)
	n.Status.LastFailure = truncate(s.LastError, 1024)
	failing := !s.LastFailure.IsZero() && s.LastFailure.After(s.LastDelivery)
	switch {
	case failing && s.Permanent:
		cond.stalled(identityv1alpha1.ReasonDeliveryFailing, fmt.Sprintf("%s refuses messages: %s", n.Status.Channel, s.LastError))
	case failing:
		cond.notReady(identityv1alpha1.ReasonDeliveryFailing, fmt.Sprintf("delivery to %s fails and is retried: %s", n.Status.Channel, s.LastError))
	default:
		cond.ready(identityv1alpha1.ReasonReconciled, fmt.Sprintf("delivering to %s: %d events in %d messages", n.Status.Channel, s.Delivered, s.Messages))
	}
}

// statusTime is a time as status keeps it, to the second; nil for none.
func statusTime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t.Truncate(time.Second))
	return &mt
}

// SetupWithManager watches Notifiers, and the hub's news of their deliveries.
func (r *NotifierReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.changes, r.ownWrites = make(chan event.GenericEvent, 256), newOwnWrites()
	r.Hub.Changed = func(key types.NamespacedName) {
		select {
		case r.changes <- event.GenericEvent{Object: &identityv1alpha1.Notifier{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}:
		default: // a write is due anyway; the next one carries this news
		}
	}
	if err := mgr.Add(r.Hub); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&identityv1alpha1.Notifier{}, builder.WithPredicates(r.ownWrites.or(predicate.GenerationChangedPredicate{}))).
		WatchesRawSource(source.Channel(r.changes, coalesced(notifierStatusEvery))).
		Complete(r)
}
