package controllers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/scim"
	"github.com/rosterhq/roster/connectors/scim/inbound"
	"github.com/rosterhq/roster/controllers/directory"
)

// InboundSCIM serves the SCIM 2.0 endpoints identity providers (Okta, Entra ID,
// OneLogin) push users and groups to: one base URL per DirectorySync with a scim source,
// /scim/v2/<namespace>/<name>. It is the "scim" directory source. Every replica serves
// it: what is pushed is kept in the API server (one ConfigMap per user and group), and
// the leader's syncer applies it.
type InboundSCIM struct {
	// Addr is the address to listen on; "" or "0" serves nothing.
	Addr string
	// CertFile and KeyFile, when set, serve HTTPS with a certificate reloaded when the
	// files change; otherwise HTTP (behind a proxy that terminates TLS).
	CertFile, KeyFile string
	Client            client.Client
	Log               logr.Logger
	// Namespaces are the namespaces whose pushed objects it follows, those the
	// manager's cache watches; nil for every one.
	Namespaces map[string]cache.Config

	// Recorder records failed-login bursts on the DirectorySync; nil records none.
	Recorder recorder.EventRecorder

	// syncers apply the pushes where they run; Setup hands them over, with the cache of
	// the ConfigMaps that keep pushed objects (whose events keep every replica's
	// endpoints current; Start runs it) and a reader straight from the API server.
	syncers *Syncers
	kept    cache.Cache
	live    client.Reader
	serving atomic.Bool

	mu        sync.Mutex
	endpoints map[types.NamespacedName]*endpoint
	failures  map[string]*failedLogins // by endpoint, or "unknown"
}

// endpoint is one DirectorySync's inbound SCIM endpoint.
type endpoint struct {
	*inbound.Endpoint
	key types.NamespacedName
	uid types.UID
	// tokensRead is when the bearer tokens were last read from their Secret.
	tokensRead time.Time
}

// tokenRecheck is how often each replica reads an endpoint's token Secret again: a
// token rotated out or revoked is refused by every replica within it.
const tokenRecheck = 10 * time.Second

// maxHeaderBytes bounds a request's headers: SCIM needs a bearer token and a filter of
// at most scim.MaxFilterLength characters in the URL.
const maxHeaderBytes = 32 << 10

// Failed logins are limited per endpoint: past a burst of failedLoginBurst, at most one
// a second is answered 401, the rest 429, and an Event says so at most once a minute.
const (
	failedLoginBurst  = 20
	failedLoginRate   = 1
	failedLoginReport = time.Minute
)

// Start serves until ctx ends: HTTPS when a certificate is given (reloaded whenever its
// files change, as a mounted Secret's do), HTTP otherwise (behind a proxy that
// terminates TLS). It runs on every replica.
func (s *InboundSCIM) Start(ctx context.Context) error {
	// Followed even where nothing is served: the leader's syncer reads what other
	// replicas keep.
	if err := s.followStore(ctx); err != nil || ctx.Err() != nil {
		return err // stopped before the kept objects were read: nothing to serve
	}
	if s.Addr == "" || s.Addr == "0" {
		<-ctx.Done()
		return nil
	}
	srv := &http.Server{
		Addr: s.Addr, Handler: s, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeaderBytes,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errs := make(chan error, 1)
	if s.CertFile != "" {
		watcher, err := certwatcher.New(s.CertFile, s.KeyFile)
		if err != nil {
			return fmt.Errorf("inbound SCIM certificate: %w", err)
		}
		go func() {
			if err := watcher.Start(ctx); err != nil {
				s.Log.Error(err, "Stopped watching the inbound SCIM certificate")
			}
		}()
		srv.TLSConfig = &tls.Config{GetCertificate: watcher.GetCertificate, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("inbound SCIM: %w", err)
	}
	if srv.TLSConfig != nil {
		go func() { errs <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errs <- srv.Serve(ln) }()
	}
	s.serving.Store(true)
	defer s.serving.Store(false)
	s.Log.Info("Serving inbound SCIM", "address", s.Addr, "tls", s.CertFile != "")
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}

// Ready is the replica's readiness check: a replica is in the inbound SCIM Service's
// endpoints once it listens (or when it serves none).
func (s *InboundSCIM) Ready(*http.Request) error {
	if s.Addr == "" || s.Addr == "0" || s.serving.Load() {
		return nil
	}
	return errors.New("inbound SCIM is not listening yet")
}

// NeedLeaderElection: every replica serves; the leader's syncer applies what is kept.
func (s *InboundSCIM) NeedLeaderElection() bool { return false }

// followStore runs the cache of kept objects and passes every change to the kept users
// and groups, by whichever replica, on to this replica's endpoint. It returns once the
// cache holds every kept object, so that no endpoint loads before it does.
func (s *InboundSCIM) followStore(ctx context.Context) error {
	if s.kept == nil {
		return nil
	}
	informer, err := s.kept.GetInformer(ctx, &corev1.ConfigMap{})
	if err != nil {
		return err
	}
	if _, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.observe(obj) },
		UpdateFunc: func(_, obj any) { s.observe(obj) },
		DeleteFunc: func(obj any) {
			if gone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = gone.Obj
			}
			if ep, o, ok := s.keptObject(obj); ok {
				ep.Gone(o.Kind, o.ID, o.Version)
			}
		},
	}); err != nil {
		return err
	}
	go func() {
		if err := s.kept.Start(ctx); err != nil {
			s.Log.Error(err, "Stopped following the kept inbound SCIM objects")
		}
	}()
	if !s.kept.WaitForCacheSync(ctx) && ctx.Err() == nil {
		return errors.New("inbound SCIM: the kept objects' cache did not sync")
	}
	return nil
}

func (s *InboundSCIM) observe(obj any) {
	if ep, o, ok := s.keptObject(obj); ok {
		ep.Observe(o)
	}
}

// keptObject is the endpoint a ConfigMap keeps a pushed object of, and the object.
func (s *InboundSCIM) keptObject(obj any) (*endpoint, inbound.Object, bool) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok || cm.Labels[LabelSCIMObject] == "" {
		return nil, inbound.Object{}, false
	}
	o, ok := objectOf(cm)
	if !ok {
		return nil, o, false
	}
	s.mu.Lock()
	ep := s.endpoints[types.NamespacedName{Namespace: cm.Namespace, Name: cm.Labels[directory.LabelDirectorySync]}]
	s.mu.Unlock()
	return ep, o, ep != nil
}

// ServeHTTP routes /scim/v2/<namespace>/<name>/… to that DirectorySync's store. A
// request for an endpoint that does not exist is answered as one without credentials
// is (401), so that endpoints cannot be discovered; every answer is SCIM JSON.
func (s *InboundSCIM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/scim/v2/")
	parts := strings.SplitN(rest, "/", 3)
	var ep *endpoint
	if ok && len(parts) >= 2 {
		ep = s.endpointFor(r.Context(), types.NamespacedName{Namespace: parts[0], Name: parts[1]})
	}
	if ep == nil || !ep.Authorize(r) {
		s.refuse(w, r, ep)
		return
	}
	if !ep.Ready() {
		if err := ep.Load(r.Context()); err != nil {
			s.Log.Info("Could not read what the inbound SCIM endpoint keeps", "endpoint", ep.key.String(), "error", err.Error())
			w.Header().Set("Retry-After", "5")
			scim.WriteError(w, http.StatusServiceUnavailable, "", "the DirectorySync is starting; retry")
			return
		}
	}
	answered := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	http.StripPrefix("/scim/v2/"+parts[0]+"/"+parts[1], ep).ServeHTTP(answered, r)
	inboundRequests.WithLabelValues(ep.key.String(), r.Method, strconv.Itoa(answered.code)).Inc()
}

// statusRecorder notes the code a handler answers with.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// refuse answers a request without valid credentials: 401, or 429 past the endpoint's
// failed-login budget; it counts it, and reports a burst.
func (s *InboundSCIM) refuse(w http.ResponseWriter, r *http.Request, ep *endpoint) {
	name := "unknown"
	if ep != nil {
		name = ep.key.String()
	}
	inboundFailedLogins.WithLabelValues(name).Inc()
	s.mu.Lock()
	if s.failures == nil {
		s.failures = map[string]*failedLogins{}
	}
	f := s.failures[name]
	if f == nil {
		f = &failedLogins{limit: rate.NewLimiter(failedLoginRate, failedLoginBurst)}
		s.failures[name] = f
	}
	f.count++
	limited := !f.limit.Allow()
	report := limited && time.Since(f.reported) >= failedLoginReport
	if report {
		f.reported = time.Now()
	}
	count := f.count
	s.mu.Unlock()
	if report {
		s.Log.Info("Failed inbound SCIM logins over the limit", "endpoint", name, "failed", count, "from", r.RemoteAddr)
		if ep != nil && s.Recorder != nil {
			ds := &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ep.key.Namespace, Name: ep.key.Name, UID: ep.uid}}
			s.Recorder.Eventf(ds, nil, corev1.EventTypeWarning, identityv1alpha1.EventFailedLogins, "Authenticate",
				"%d requests to the inbound SCIM endpoint came without a valid bearer token (the last from %s); further ones are slowed down", count, r.RemoteAddr)
		}
	}
	if limited {
		w.Header().Set("Retry-After", "60")
		scim.WriteError(w, http.StatusTooManyRequests, "", "too many requests without valid credentials")
		return
	}
	scim.WriteUnauthorized(w)
}

// failedLogins counts one endpoint's requests without valid credentials.
type failedLogins struct {
	limit    *rate.Limiter
	count    int
	reported time.Time
}

// SourceFactory is the "scim" source: the endpoint of the DirectorySync, loaded from
// its Users the first time, with the bearer token the identity provider must send.
func (s *InboundSCIM) SourceFactory() connectors.SourceFactory {
	return func(ctx context.Context, ds *identityv1alpha1.DirectorySync, secrets connectors.SecretReader) (connectors.Source, error) {
		key := types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}
		tokens, err := inboundTokens(ctx, ds.Spec.SCIM.TokenSecretRef, secrets)
		if err != nil {
			s.Revoke(key)
			return nil, err
		}
		ep := s.ensure(key, ds.UID)
		ep.SetTokens(tokens)
		s.mu.Lock()
		ep.tokensRead = time.Now()
		s.mu.Unlock()
		if err := ep.Load(ctx); err != nil {
			return nil, err
		}
		return ep.Endpoint, nil
	}
}

// ensure returns a DirectorySync's endpoint, made if there is none (or only one of an
// earlier DirectorySync of the same name).
func (s *InboundSCIM) ensure(key types.NamespacedName, uid types.UID) *endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endpoints == nil {
		s.endpoints = map[types.NamespacedName]*endpoint{}
	}
	ep := s.endpoints[key]
	if ep == nil || ep.uid != uid {
		store := endpointStore{client: s.Client, kept: s.kept, live: s.live, key: key, uid: uid}
		ep = &endpoint{Endpoint: inbound.New(syncerSink{syncers: s.syncers, key: key}, store), key: key, uid: uid}
		s.endpoints[key] = ep
	}
	return ep
}

// endpointFor returns the endpoint a request is for, on any replica: nil if no
// DirectorySync with a scim source has that name. Its tokens are read again when they
// are older than tokenRecheck.
func (s *InboundSCIM) endpointFor(ctx context.Context, key types.NamespacedName) *endpoint {
	ds := &identityv1alpha1.DirectorySync{}
	if err := s.Client.Get(ctx, key, ds); err != nil || ds.Spec.SCIM == nil || ds.DeletionTimestamp != nil {
		s.Forget(key)
		return nil
	}
	ep := s.ensure(key, ds.UID)
	s.mu.Lock()
	stale := time.Since(ep.tokensRead) >= tokenRecheck
	if stale {
		ep.tokensRead = time.Now()
	}
	s.mu.Unlock()
	if stale {
		tokens, err := inboundTokens(ctx, ds.Spec.SCIM.TokenSecretRef, newSecretReader(s.live, key.Namespace))
		if err != nil {
			s.Log.Info("Refusing every token of the inbound SCIM endpoint", "endpoint", key.String(), "error", err.Error())
		}
		ep.SetTokens(tokens)
	}
	return ep
}

// PreviousTokenKey is the key of the token Secret that, while present, holds the token
// being rotated out: both are accepted until it is removed.
const PreviousTokenKey = "previousToken"

// inboundTokens reads the bearer token an identity provider must send, and the previous
// one while a rotation overlaps.
func inboundTokens(ctx context.Context, ref identityv1alpha1.SecretKeySelector, secrets connectors.SecretReader) ([][]byte, error) {
	token, err := secrets.SecretValue(ctx, ref.Name, ref.Key)
	if err != nil {
		return nil, err
	}
	tokens := [][]byte{token}
	if ref.Key != PreviousTokenKey {
		previous, err := secrets.SecretValue(ctx, ref.Name, PreviousTokenKey)
		switch {
		case err == nil:
			tokens = append(tokens, previous)
		case !errors.Is(err, connectors.ErrSecretNotFound):
			return nil, err
		}
	}
	for _, t := range tokens {
		if len(t) < 16 {
			return nil, &connectors.PermanentError{Message: "a bearer token in Secret " + ref.Name + " is shorter than 16 characters; no token is accepted until it is mended"}
		}
	}
	return tokens, nil
}

// Revoke makes a DirectorySync's endpoint refuse every token, until its Secret is
// valid again.
func (s *InboundSCIM) Revoke(key types.NamespacedName) {
	s.mu.Lock()
	ep := s.endpoints[key]
	s.mu.Unlock()
	if ep != nil {
		ep.SetTokens(nil)
	}
}

// Forget drops a DirectorySync's endpoint.
func (s *InboundSCIM) Forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.endpoints, key)
}
