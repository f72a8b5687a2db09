package controllers

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/scim"
)

// InboundSCIM serves the SCIM 2.0 endpoints identity providers (Okta, Entra ID,
// OneLogin) push users and groups to: one base URL per DirectorySync with a scim source,
// /scim/v2/<namespace>/<name>. It is the "scim" directory source.
type InboundSCIM struct {
	// Addr is the address to listen on; "" or "0" serves nothing.
	Addr string
	// CertFile and KeyFile, when set, serve HTTPS; otherwise HTTP (behind a proxy that
	// terminates TLS).
	CertFile, KeyFile string
	Client            client.Client
	Log               logr.Logger

	mu     sync.Mutex
	stores map[types.NamespacedName]*inboundStore
}

// Start serves until ctx ends. It runs on the leader only: the store of each
// DirectorySync lives in this process.
func (s *InboundSCIM) Start(ctx context.Context) error {
	if s.Addr == "" || s.Addr == "0" {
		<-ctx.Done()
		return nil
	}
	srv := &http.Server{
		Addr: s.Addr, Handler: s, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errs := make(chan error, 1)
	go func() {
		if s.CertFile != "" {
			errs <- srv.ListenAndServeTLS(s.CertFile, s.KeyFile)
		} else {
			errs <- srv.ListenAndServe()
		}
	}()
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

// ServeHTTP routes /scim/v2/<namespace>/<name>/… to that DirectorySync's store.
func (s *InboundSCIM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/scim/v2/")
	parts := strings.SplitN(rest, "/", 3)
	if !ok || len(parts) < 2 {
		http.Error(w, `{"schemas":["`+scim.MessageError+`"],"status":"404","detail":"no SCIM endpoint here"}`, http.StatusNotFound)
		return
	}
	key := types.NamespacedName{Namespace: parts[0], Name: parts[1]}
	s.mu.Lock()
	store := s.stores[key]
	s.mu.Unlock()
	if store == nil || !store.ready() {
		w.Header().Set("Content-Type", scim.MediaType)
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"schemas":["` + scim.MessageError + `"],"status":"404","detail":"no DirectorySync with a scim source at this URL"}`))
		return
	}
	http.StripPrefix("/scim/v2/"+parts[0]+"/"+parts[1], store.server).ServeHTTP(w, r)
}

// SourceFactory is the "scim" source: the store of the DirectorySync, loaded from its
// Users the first time, with the bearer token the identity provider must send.
func (s *InboundSCIM) SourceFactory() connectors.SourceFactory {
	return func(ctx context.Context, ds *identityv1alpha1.DirectorySync, secrets connectors.SecretReader) (connectors.Source, error) {
		key := types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}
		tokens, err := inboundTokens(ctx, ds.Spec.SCIM.TokenSecretRef, secrets)
		if err != nil {
			s.Revoke(key)
			return nil, err
		}
		s.mu.Lock()
		if s.stores == nil {
			s.stores = map[types.NamespacedName]*inboundStore{}
		}
		store := s.stores[key]
		if store == nil {
			store = newInboundStore(key, ds.UID, s.Client)
			s.stores[key] = store
		}
		s.mu.Unlock()
		store.setTokens(tokens)
		if err := store.load(ctx); err != nil {
			return nil, err
		}
		return store, nil
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
	store := s.stores[key]
	s.mu.Unlock()
	if store != nil {
		store.setTokens(nil)
	}
}

// Forget drops a DirectorySync's store.
func (s *InboundSCIM) Forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.stores, key)
}

// authorize compares a request's bearer token with each accepted one in constant time.
func authorize(r *http.Request, tokens [][]byte) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	match := 0
	for _, token := range tokens {
		if len(token) > 0 {
			match |= subtle.ConstantTimeCompare([]byte(got), token)
		}
	}
	return ok && match == 1
}

var errNotReady = errors.New("the DirectorySync is not ready yet; retry")
