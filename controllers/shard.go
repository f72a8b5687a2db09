package controllers

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Shard is the part of the work a replica does. A named shard runs the engines of the
// AppConnections and the syncers of the DirectorySyncs labelled with its name, writes
// their status and their apps' accounts in Users' status, and counts the AppAssignments
// of its apps. The main shard (no name, a replica started without --shard) runs those
// without the label, and everything that belongs to no app: Users' lifecycle and
// conditions, Roles' counts and grants, access requests. Every replica caches Users,
// Roles and AppAssignments and computes its apps' desired state itself.
type Shard string

// MainShard is the shard of replicas started without --shard.
const MainShard Shard = ""

// ParseShard checks a --shard flag. Objects name the shard in a label value, and its
// replicas in a lease name and a finalizer: a DNS label fits all three.
func ParseShard(name string) (Shard, error) {
	if name == "" {
		return MainShard, nil
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return "", fmt.Errorf("--shard %q: %s", name, strings.Join(errs, "; "))
	}
	return Shard(name), nil
}

// shardOf is the shard an AppConnection or DirectorySync belongs to.
func shardOf(obj client.Object) Shard {
	return Shard(obj.GetLabels()[identityv1alpha1.LabelShard])
}

func (s Shard) main() bool { return s == MainShard }

// owns says whether this shard runs an AppConnection or a DirectorySync.
func (s Shard) owns(obj client.Object) bool { return shardOf(obj) == s }

// finalizer is the finalizer a named shard puts on Users; the main shard's is
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
