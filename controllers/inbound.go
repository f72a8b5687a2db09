package controllers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/scim"
	"github.com/rosterhq/roster/connectors/scim/inbound"
)

// InboundSCIM serves the SCIM 2.0 endpoints identity providers (Okta, Entra ID,
// OneLogin) push users and groups to: one base URL per DirectorySync with a scim source,
// /scim/v2/<namespace>/<name>. It is the "scim" directory source.
type InboundSCIM struct {
	// Addr is the address to listen on; "" or "0" serves nothing.
	Addr string
	// CertFile and KeyFile, when set, serve HTTPS with a certificate reloaded when the
	// files change; otherwise HTTP (behind a proxy that terminates TLS).
	CertFile, KeyFile string
	Client            client.Client
	Log               logr.Logger

	// Recorder records failed-login bursts on the DirectorySync; nil records none.
	Recorder recorder.EventRecorder

	// syncers apply the pushes; Setup hands them over.
	syncers *Syncers

	mu        sync.Mutex
	endpoints map[types.NamespacedName]*endpoint
	failures  map[string]*failedLogins // by endpoint, or "unknown"
}

// endpoint is one DirectorySync's inbound SCIM endpoint.
type endpoint struct {
	*inbound.Endpoint
	key types.NamespacedName
	uid types.UID
}

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
// terminates TLS). It runs on the leader only: the store of each DirectorySync lives
// in this process.
func (s *InboundSCIM) Start(ctx context.Context) error {
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
		go func() { errs <- srv.ListenAndServeTLS("", "") }()
	} else {
		go func() { errs <- srv.ListenAndServe() }()
	}
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

// NeedLeaderElection: pushes are applied by the leader.
func (s *InboundSCIM) NeedLeaderElection() bool { return true }

// ServeHTTP routes /scim/v2/<namespace>/<name>/… to that DirectorySync's store. A
// request for an endpoint that does not exist is answered as one without credentials
// is (401), so that endpoints cannot be discovered; every answer is SCIM JSON.
func (s *InboundSCIM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/scim/v2/")
	parts := strings.SplitN(rest, "/", 3)
	var ep *endpoint
	if ok && len(parts) >= 2 {
		s.mu.Lock()
		ep = s.endpoints[types.NamespacedName{Namespace: parts[0], Name: parts[1]}]
		s.mu.Unlock()
	}
	if ep == nil || !ep.Authorize(r) {
		s.refuse(w, r, ep)
		return
	}
	if !ep.Ready() || s.syncers == nil || s.syncers.Get(ep.key) == nil {
		w.Header().Set("Retry-After", "5")
		scim.WriteError(w, http.StatusServiceUnavailable, "", "the DirectorySync is starting; retry")
		return
	}
	http.StripPrefix("/scim/v2/"+parts[0]+"/"+parts[1], ep).ServeHTTP(w, r)
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
		s.mu.Lock()
		if s.endpoints == nil {
			s.endpoints = map[types.NamespacedName]*endpoint{}
		}
		ep := s.endpoints[key]
		if ep == nil {
			sink := syncerSink{syncers: s.syncers, key: key}
			ep = &endpoint{Endpoint: inbound.New(sink, endpointStore{client: s.Client, key: key, uid: ds.UID}), key: key, uid: ds.UID}
			s.endpoints[key] = ep
		}
		s.mu.Unlock()
		ep.SetTokens(tokens)
		if err := ep.Load(ctx); err != nil {
			return nil, err
		}
		return ep.Endpoint, nil
	}
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
