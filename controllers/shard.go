package controllers

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Shard names a part of the apps and directories. A shard's replica runs the engines of
// its AppConnections and the syncers of its DirectorySyncs, writes their status, their
// AppAssignments' counts and their entries in Users' status.accounts, and takes its
// finalizer off a deleted User once its apps have deprovisioned it (the main shard puts
// every shard's finalizer on).
//
// The main shard (no name) also does the work that belongs to no app: Users' lifecycle
// and conditions, Roles' counts and grants, access requests. Every replica caches
// Users, Roles and AppAssignments and computes its apps' desired state itself.
type Shard string

// MainShard is the shard of replicas started without --shard.
const MainShard Shard = ""

// autoShardPrefix names the automatic shards: auto-0 … auto-(n-1).
const autoShardPrefix = "auto-"

// ParseShard checks a --shard flag. Objects name the shard in a label value, and its
// replicas in a lease name and a finalizer: a DNS label fits all three. Automatic
// shards' names are not for people to take.
func ParseShard(name string) (Shard, error) {
	if name == "" {
		return MainShard, nil
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return "", fmt.Errorf("--shard %q: %s", name, strings.Join(errs, "; "))
	}
	if strings.HasPrefix(name, autoShardPrefix) {
		return "", fmt.Errorf("--shard %q: names starting %q are the automatic shards' (--auto-shards)", name, autoShardPrefix)
	}
	return Shard(name), nil
}

func (s Shard) main() bool { return s == MainShard }

// finalizer is the finalizer a shard's replica puts on Users; the main shard's is
// identityv1alpha1.Finalizer.
func (s Shard) finalizer() string {
	if s.main() {
		return identityv1alpha1.Finalizer
	}
	return identityv1alpha1.ShardFinalizerPrefix + string(s)
}

// String names the shard in logs and messages.
func (s Shard) String() string {
	if s.main() {
		return "main"
	}
	return string(s)
}

// LeaderElectionID is the lease a shard's replicas elect their leader by: one per
// shard, so that each shard has one replica writing at a time.
func (s Shard) LeaderElectionID(base string) string {
	if s.main() {
		return base
	}
	return string(s) + ".shard." + base
}

// Sharding is the part of the work this replica does: one shard named by --shard, or,
// with --auto-shards, the automatic shards whose leases it holds and, while it leads,
// the main shard's work.
type Sharding struct {
	name Shard
	// auto is the number of automatic shards; 0 without them.
	auto int
	// leaders, when replicas elect their leaders, tells the main shard's replica which
	// named shards no replica leads.
	leaders *shardLeaders

	mu   sync.RWMutex
	held map[Shard]bool
	// elected is closed once this replica leads; with automatic shards, the leader does
	// the main shard's work until it is deposed (its lease lost, or the manager stopped):
	// a manager leads once.
	elected <-chan struct{}
	deposed atomic.Bool
}

// NewSharding returns the work of a replica started with --shard name, or, for auto
// above 0, one that shares auto automatic shards with the others.
func NewSharding(name Shard, auto int) *Sharding {
	return &Sharding{name: name, auto: auto, held: map[Shard]bool{}}
}

// of is the shard an AppConnection or DirectorySync belongs to: its label's, else, with
// automatic shards, the one its name hashes to, else the main shard.
func (s *Sharding) of(obj client.Object) Shard {
	if v := obj.GetLabels()[identityv1alpha1.LabelShard]; v != "" {
		return Shard(v)
	}
	if s.auto > 0 {
		return autoShard(obj.GetNamespace(), obj.GetName(), s.auto)
	}
	return MainShard
}

func autoShard(namespace, name string, n int) Shard {
	h := fnv.New32a()
	_, _ = h.Write([]byte(namespace + "/" + name))
	return Shard(fmt.Sprintf("%s%d", autoShardPrefix, h.Sum32()%uint32(n)))
}

// finalizersOf are the finalizers, sorted, of the shards other than the main one that
// run these AppConnections.
func (s *Sharding) finalizersOf(conns []*identityv1alpha1.AppConnection) []string {
	var out []string
	for _, c := range conns {
		if shard := s.of(c); !shard.main() && !slices.Contains(out, shard.finalizer()) {
			out = append(out, shard.finalizer())
		}
	}
	slices.Sort(out)
	return out
}

// Owns says whether this replica runs an AppConnection or a DirectorySync.
func (s *Sharding) Owns(obj client.Object) bool { return s.runs(s.of(obj)) }

// runs says whether this replica runs a shard.
func (s *Sharding) runs(shard Shard) bool {
	if s.auto == 0 {
		return shard == s.name
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.held[shard]
}

// main says whether this replica does the main shard's work.
func (s *Sharding) main() bool {
	if s.auto == 0 {
		return s.name.main()
	}
	select {
	case <-s.elected:
		return !s.deposed.Load()
	default:
		return false
	}
}

// onLead is a source that, once this replica comes to lead, queues every object that
// list (of the kind a controller reconciles) holds in the cache: the main shard's work
// on them is now this replica's, and the leader before it may have left it unfinished.
// Only automatic shards need it: without them, controllers start when the replica
// leads, and their first listing queues everything.
func (s *Sharding) onLead(cache client.Reader, list client.ObjectList) source.Source {
	return source.Func(func(ctx context.Context, q workqueue) error {
		if s.auto == 0 {
			return nil
		}
		go func() {
			select {
			case <-s.elected:
			case <-ctx.Done():
				return
			}
			if err := cache.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
				ctrl.Log.WithName("shards").Error(err, "Could not list the main shard's objects on taking the lead")
				return
			}
			_ = meta.EachListItem(list, func(o runtime.Object) error {
				q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o.(client.Object))})
				return nil
			})
		}()
		return nil
	})
}

// running lists the shards this replica runs.
func (s *Sharding) running() []Shard {
	if s.auto == 0 {
		return []Shard{s.name}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Shard, 0, len(s.held))
	for shard := range s.held {
		out = append(out, shard)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (s *Sharding) hold(shard Shard, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if held {
		s.held[shard] = true
	} else {
		delete(s.held, shard)
	}
}
