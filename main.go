// Command roster runs the Roster operator: it converges the accounts in SaaS apps and
// directories to the Users, Roles and AppAssignments declared in Kubernetes.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/controllers"
)

type options struct {
	scimAddr       string
	scimCert       string
	scimKey        string
	scimCertDir    string
	metricsAddr    string
	metricsSecure  bool
	probeAddr      string
	leaderElect    bool
	enableHTTP2    bool
	leaderElection string
	concurrency    int
	// access requests: the API server's prefix before a person's userName, and how long
	// ended requests are kept.
	identityPrefix  string
	requestsKeptFor time.Duration
	// watchNamespaces, when set, are the only namespaces the operator reads and writes.
	watchNamespaces string
	// shard is the shard this replica runs (--shard); autoShards, how many automatic
	// shards the replicas share (--auto-shards).
	shard      string
	autoShards int
	// lease timing of leader election.
	leaseDuration, renewDeadline, retryPeriod time.Duration
}

func main() {
	var opts options
	flag.StringVar(&opts.metricsAddr, "metrics-bind-address", "0",
		"Address the metrics endpoint binds to, for example :8443 (HTTPS) or :8080 (HTTP); 0 disables it.")
	flag.BoolVar(&opts.metricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS, authenticated and authorized through the API server.")
	flag.StringVar(&opts.probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&opts.leaderElect, "leader-elect", false,
		"Elect a leader so that only one replica reconciles at a time.")
	flag.DurationVar(&opts.leaseDuration, "leader-elect-lease-duration", controllers.DefaultLeaseTiming.Duration,
		"How long replicas wait, after the leader last renewed its lease, before one takes the lead: a leader that dies without a goodbye leaves its apps and directories idle this long at most.")
	flag.DurationVar(&opts.renewDeadline, "leader-elect-renew-deadline", controllers.DefaultLeaseTiming.RenewDeadline,
		"How long the leader keeps trying to renew its lease before it stops leading (shorter than the lease duration).")
	flag.DurationVar(&opts.retryPeriod, "leader-elect-retry-period", controllers.DefaultLeaseTiming.RetryPeriod,
		"How often replicas try to take or renew the lease.")
	flag.StringVar(&opts.leaderElection, "leader-election-namespace", "",
		"Namespace of the leader election lease; defaults to the operator's own namespace.")
	flag.StringVar(&opts.scimAddr, "scim-bind-address", ":9443",
		"Address the inbound SCIM endpoints (DirectorySyncs with a scim source) bind to; 0 serves none.")
	flag.StringVar(&opts.scimCert, "scim-tls-cert-file", "", "Certificate (PEM) to serve inbound SCIM over HTTPS, reloaded when it changes; unset serves HTTP for a proxy that terminates TLS.")
	flag.StringVar(&opts.scimKey, "scim-tls-key-file", "", "Private key (PEM) of --scim-tls-cert-file.")
	flag.StringVar(&opts.scimCertDir, "scim-tls-cert-dir", "",
		"Directory of a mounted kubernetes.io/tls Secret (tls.crt, tls.key): inbound SCIM is served over HTTPS when the files are there, over HTTP when not.")
	flag.BoolVar(&opts.enableHTTP2, "enable-http2", false,
		"Serve metrics over HTTP/2 (off by default, against HTTP/2 rapid-reset attacks).")
	flag.IntVar(&opts.concurrency, "concurrent-reconciles", controllers.DefaultConcurrentReconciles,
		"How many objects of each kind are reconciled at once.")
	flag.StringVar(&opts.identityPrefix, "kubernetes-username-prefix", "",
		"What the API server puts before a person's userName in their Kubernetes user name (its OIDC username prefix), so that approvers of access requests are known by their User.")
	flag.DurationVar(&opts.requestsKeptFor, "access-request-retention", controllers.DefaultAccessRequestRetention,
		"How long an ended access request is kept, for audit, before it is deleted.")
	flag.StringVar(&opts.watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces (organisations) to manage; every namespace when unset. With it, the operator needs its role bound in those namespaces only.")
	flag.StringVar(&opts.shard, "shard", "",
		"The shard this replica runs: the AppConnections and DirectorySyncs labelled "+identityv1alpha1.LabelShard+" with this name. Unset, it runs those without the label, and Users' lifecycle, Roles and access requests. Replicas of one shard elect one leader among them.")
	flag.IntVar(&opts.autoShards, "auto-shards", 0,
		"Spread the AppConnections and DirectorySyncs without a shard label over this many shards, whose leases the replicas share out (each a fair share; a lost replica's within the lease duration). The leader does the main shard's other work. Needs --leader-elect; 0 runs them all on the leader.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	if limit, ok := softMemoryLimit(os.Getenv("GOMEMLIMIT"), os.ReadFile); ok {
		debug.SetMemoryLimit(limit)
		log.Info("Keeping the heap under 90% of the container's memory limit", "bytes", limit)
	}

	shard, err := controllers.ParseShard(opts.shard)
	if err == nil {
		err = checkAutoShards(opts)
	}
	if err != nil {
		log.Error(err, "Invalid flag")
		os.Exit(2)
	}
	mgr, err := newManager(opts, shard)
	if err != nil {
		log.Error(err, "Could not create the manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if opts.scimCert == "" && opts.scimCertDir != "" {
		cert, key := filepath.Join(opts.scimCertDir, "tls.crt"), filepath.Join(opts.scimCertDir, "tls.key")
		if _, err := os.Stat(cert); err == nil {
			opts.scimCert, opts.scimKey = cert, key
		} else {
			log.Info("No certificate for inbound SCIM; serving HTTP for a proxy that terminates TLS", "dir", opts.scimCertDir)
		}
	}
	inbound := &controllers.InboundSCIM{Addr: opts.scimAddr, CertFile: opts.scimCert, KeyFile: opts.scimKey,
		Client: mgr.GetClient(), Log: ctrl.Log.WithName("inbound-scim"), Namespaces: namespaces(opts.watchNamespaces)}
	if err := mgr.AddReadyzCheck("inbound-scim", inbound.Ready); err != nil {
		log.Error(err, "Could not add the inbound SCIM readiness check")
		os.Exit(1)
	}
	registry := controllers.Connectors(memory.NewApps(), inbound)
	if err := controllers.Setup(ctx, mgr, controllers.Options{Registry: registry, Inbound: inbound,
		IdentityPrefix: opts.identityPrefix, AccessRequestRetention: opts.requestsKeptFor,
		Sharding: controllers.NewSharding(shard, opts.autoShards), ShardLeaders: opts.leaderElect,
		Leases: controllers.LeaseTiming{Namespace: leaseNamespace(opts.leaderElection, os.ReadFile),
			Duration: opts.leaseDuration, RenewDeadline: opts.renewDeadline, RetryPeriod: opts.retryPeriod}}); err != nil {
		log.Error(err, "Could not set up the controllers")
		os.Exit(1)
	}
	log.Info("Starting the manager", "shard", shard.String(), "autoShards", opts.autoShards)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "The manager stopped with an error")
		os.Exit(1)
	}
}

func newManager(opts options, shard controllers.Shard) (ctrl.Manager, error) {
	needLeader := opts.autoShards == 0
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := identityv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	var tlsOpts []func(*tls.Config)
	if !opts.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metrics := metricsserver.Options{BindAddress: opts.metricsAddr, SecureServing: opts.metricsSecure, TLSOpts: tlsOpts}
	if opts.metricsSecure {
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), controllers.ManagerOptions(ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metrics,
		HealthProbeBindAddress:  opts.probeAddr,
		LeaderElection:          opts.leaderElect,
		LeaderElectionID:        shard.LeaderElectionID(controllers.LeaseBase),
		LeaderElectionNamespace: opts.leaderElection,
		LeaseDuration:           &opts.leaseDuration,
		RenewDeadline:           &opts.renewDeadline,
		RetryPeriod:             &opts.retryPeriod,
		// A leader that is stopped (SIGTERM) gives the lease up at once, so that the next
		// replica takes over without waiting the lease out.
		LeaderElectionReleaseOnCancel: true,
		// With automatic shards every replica runs the controllers for the shards it holds;
		// the leader alone does the main shard's work.
		Controller: config.Controller{MaxConcurrentReconciles: opts.concurrency, NeedLeaderElection: &needLeader},
		Cache:      cache.Options{DefaultNamespaces: namespaces(opts.watchNamespaces)},
	}))
	if err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// softMemoryLimit is 90% of the container's memory limit (cgroup v2, else v1), unless
// GOMEMLIMIT is set: the garbage collector then works harder near the limit instead of
// letting the heap grow to twice what is live and the container be killed.
func softMemoryLimit(gomemlimit string, read func(string) ([]byte, error)) (int64, bool) {
	if gomemlimit != "" {
		return 0, false
	}
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		data, err := read(path)
		if err != nil {
			continue
		}
		limit, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil || limit <= 0 || limit >= 1<<50 { // "max", or v1's "no limit"
			return 0, false
		}
		return limit / 10 * 9, true
	}
	return 0, false
}

// checkAutoShards: automatic shards are shared out among replicas that elect a leader
// for the main shard's work, and the shard labels of replicas started with --shard are
// none of theirs.
func checkAutoShards(opts options) error {
	switch {
	case opts.autoShards < 0 || opts.autoShards > 1000:
		return fmt.Errorf("--auto-shards %d: from 0 to 1000", opts.autoShards)
	case opts.autoShards > 0 && !opts.leaderElect:
		return errors.New("--auto-shards needs --leader-elect: the leader does the main shard's work")
	case opts.autoShards > 0 && opts.shard != "":
		return errors.New("--auto-shards and --shard exclude each other: a replica runs one named shard, or shares the automatic ones")
	}
	return nil
}

// leaseNamespace is where the shards' leases are: the leader election's namespace, by
// default the operator's own.
func leaseNamespace(flag string, read func(string) ([]byte, error)) string {
	if flag != "" {
		return flag
	}
	if ns, err := read("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		return strings.TrimSpace(string(ns))
	}
	return "default"
}

// namespaces are the namespaces the cache watches: nil for every one.
func namespaces(list string) map[string]cache.Config {
	var out map[string]cache.Config
	for _, ns := range strings.Split(list, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			if out == nil {
				out = map[string]cache.Config{}
			}
			out[ns] = cache.Config{}
		}
	}
	return out
}
