// Package graphapi is a Microsoft Entra ID tenant on loopback for tests: Microsoft
// Graph v1.0's users, groups, members, licences, sign-in session revocation and JSON
// batches, and the identity platform's token endpoint for client credentials (a client
// secret, or a client assertion signed with a certificate's key). Microsoft publishes
// no machine-readable description that can be had here, so every route checks the
// shapes Microsoft's Graph reference documents for it (cited beside each route):
// required and known properties, query options, bounds. What departs from them is kept
// as a problem for the test to fail on.
package graphapi

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // the identity platform names a certificate by its SHA-1 thumbprint (x5t)
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// TenantID is the tenant's id.
	TenantID = "5f0c1b2e-7a3d-4c8e-9b1a-2d3e4f5a6b7c"
	// ClientID is the app registration's client id.
	ClientID = "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a"
	// Secret is the app's client secret.
	Secret = "client-secret-~7Qx.9"
	// SkuE3 and SkuE5 are licences the tenant has.
	SkuE3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
	SkuE5 = "c7df2760-2c81-4ef7-b578-5b5392b571df"
)

// Options shape the tenant.
type Options struct {
	// Domain is the tenant's verified domain; "" is example.com.
	Domain string
	// MaxPage is the most items a page holds whatever $top asks; 0 is 100.
	MaxPage int
	// NoSignInActivity refuses signInActivity, as a tenant without Entra ID P1 does.
	NoSignInActivity bool
}

// Server is the tenant.
type Server struct {
	URL string
	// Certificate is the app registration's certificate and its key, PEM.
	Certificate []byte

	opts       Options
	http       *httptest.Server
	thumbprint string
	public     *rsa.PublicKey

	mu       sync.Mutex
	users    []map[string]any
	userKeys map[string]map[string]any // by lower-cased id and userPrincipalName
	groups   []map[string]any
	members  map[string][]string // group id → member ids
	revoked  map[string]int      // user id → revocations
	tokens   map[string]time.Time
	calls    map[string]int
	problems []string
	throttle int
	cut      int // answers to cut in half after the request is carried out
	batches  int
	nextID   int
	changes  []change // for delta queries
	jtis     map[string]bool
}

// Start serves a tenant on loopback.
func Start(opts Options) (*Server, error) {
	if opts.Domain == "" {
		opts.Domain = "example.com"
	}
	if opts.MaxPage == 0 {
		opts.MaxPage = 100
	}
	s := &Server{opts: opts, members: map[string][]string{}, userKeys: map[string]map[string]any{}, revoked: map[string]int{}, tokens: map[string]time.Time{},
		calls: map[string]int{}, jtis: map[string]bool{}}
	if err := s.makeCertificate(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1.0/", s.graph)
	mux.HandleFunc("/", s.token)
	s.http = httptest.NewServer(mux)
	s.URL = s.http.URL + "/"
	return s, nil
}

func (s *Server) makeCertificate() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "roster"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	sum := sha1.Sum(der) //nolint:gosec // a thumbprint
	s.thumbprint, s.public = base64.RawURLEncoding.EncodeToString(sum[:]), &key.PublicKey
	s.Certificate = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	return nil
}

// Close stops the server.
func (s *Server) Close() { s.http.Close() }

// Problems are the departures from Microsoft's documentation seen so far.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

// Calls is how many requests of a route ("POST /users") were made, in batches or alone.
func (s *Server) Calls(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route]
}

// Batches is how many JSON batches were sent.
func (s *Server) Batches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches
}

// Memberships is how many members all groups hold together.
func (s *Server) Memberships() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ids := range s.members {
		n += len(ids)
	}
	return n
}

// Revocations is how many times a user's sign-in sessions were revoked.
func (s *Server) Revocations(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.findUser(key); u != nil {
		return s.revoked[u["id"].(string)]
	}
	return 0
}

// Throttle answers the next n requests with 429 and a Retry-After of one second.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = n
}

// CutAnswers carries out the next n requests and cuts each answer's body in half, as a
// connection lost while the answer was on its way does.
func (s *Server) CutAnswers(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = n
}

// User is a user as Graph holds it, by id or userPrincipalName; nil if none.
func (s *Server) User(key string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.findUser(key); u != nil {
		return clone(u)
	}
	return nil
}

// Members are the userPrincipalNames of a group's user members, by display name.
func (s *Server) Members(displayName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, g := range s.groups {
		if g["displayName"] == displayName {
			for _, id := range s.members[g["id"].(string)] {
				if u := s.findUser(id); u != nil {
					out = append(out, u["userPrincipalName"].(string))
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// SignIn records a user's last sign-in, as signInActivity shows it.
func (s *Server) SignIn(key string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.findUser(key); u != nil {
		u["signInActivity"] = map[string]any{"lastSignInDateTime": at.UTC().Format(time.RFC3339)}
	}
}

func (s *Server) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// token is the identity platform's v2.0 token endpoint, for the client credentials
// grant: https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
// (a shared secret, or a certificate: https://learn.microsoft.com/entra/identity-platform/certificate-credentials).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	tenant, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/oauth2/v2.0/token")
	if !ok || r.Method != http.MethodPost || strings.Contains(tenant, "/") {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	f := r.PostForm
	switch {
	case tenant != TenantID && tenant != s.opts.Domain:
		oauthError(w, "invalid_request", "AADSTS90002: Tenant not found.")
		return
	case f.Get("grant_type") != "client_credentials":
		oauthError(w, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
		return
	case f.Get("client_id") != ClientID:
		oauthError(w, "unauthorized_client", "AADSTS700016: Application not found in the directory.")
		return
	case f.Get("scope") != strings.TrimSuffix(s.URL, "/")+"/.default":
		oauthError(w, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.")
		return
	}
	if f.Has("client_secret") == f.Has("client_assertion") {
		oauthError(w, "invalid_request", "AADSTS700025: give either client_secret or client_assertion")
		return
	}
	if f.Has("client_secret") && f.Get("client_secret") != Secret {
		oauthError(w, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}
	if f.Has("client_assertion") {
		if msg := s.checkAssertion(r, f.Get("client_assertion_type"), f.Get("client_assertion")); msg != "" {
			oauthError(w, "invalid_client", msg)
			return
		}
	}
	token := randomID()
	s.mu.Lock()
	s.tokens[token] = time.Now().Add(time.Hour)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": token})
}

// checkAssertion checks a client assertion as the identity platform does: signed
// RS256 by the registered certificate named by x5t, for the token endpoint, by and
// about the client, short-lived, never used twice.
func (s *Server) checkAssertion(r *http.Request, kind, assertion string) string {
	if kind != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return "AADSTS700023: client_assertion_type is invalid"
	}
	claims := jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		if t.Header["x5t"] != s.thumbprint {
			return nil, fmt.Errorf("AADSTS700027: the certificate with identifier %v is not registered on the application", t.Header["x5t"])
		}
		return s.public, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(ClientID), jwt.WithSubject(ClientID),
		jwt.WithAudience(s.http.URL+r.URL.Path), jwt.WithExpirationRequired())
	if err != nil {
		return "AADSTS700027: Client assertion failed signature validation: " + err.Error()
	}
	if time.Until(claims.ExpiresAt.Time) > 2*time.Hour || claims.ID == "" {
		return "AADSTS700024: Client assertion is not within its valid time range, or has no jti"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jtis[claims.ID] {
		return "AADSTS700024: the client assertion was used before"
	}
	s.jtis[claims.ID] = true
	return ""
}

func oauthError(w http.ResponseWriter, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	if code == "invalid_client" || code == "unauthorized_client" {
		w.WriteHeader(http.StatusUnauthorized)
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// graph serves one Graph request.
func (s *Server) graph(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	s.mu.Lock()
	expires, ok := s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	s.mu.Unlock()
	if !ok || time.Now().After(expires) {
		writeJSON(w, http.StatusUnauthorized, nil, graphError("InvalidAuthenticationToken", "Access token validation failure."))
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1.0")
	if r.Method == http.MethodPost && path == "/$batch" {
		s.batch(w, body)
		return
	}
	status, header, answer := s.serve(r.Method, path, r.URL.RawQuery, body)
	s.mu.Lock()
	cut := s.cut > 0 && answer != nil
	if cut {
		s.cut--
	}
	s.mu.Unlock()
	if cut {
		whole, _ := json.Marshal(answer)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(whole[:len(whole)/2])
		return
	}
	writeJSON(w, status, header, answer)
}

func writeJSON(w http.ResponseWriter, status int, header http.Header, answer any) {
	for k, v := range header {
		w.Header()[k] = v
	}
	if answer != nil {
		w.Header().Set("Content-Type", "application/json;odata.metadata=minimal")
	}
	w.WriteHeader(status)
	if answer != nil {
		_ = json.NewEncoder(w).Encode(answer)
	}
}

func graphError(code, message string) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": message,
		"innerError": map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "request-id": randomID()}}}
}

// batch serves a JSON batch: https://learn.microsoft.com/graph/json-batching (at most
// 20 requests; each answered in responses by its id).
func (s *Server) batch(w http.ResponseWriter, body []byte) {
	var in struct {
		Requests []struct {
			ID      string            `json:"id"`
			Method  string            `json:"method"`
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"requests"`
	}
	s.mu.Lock()
	s.batches++
	if err := json.Unmarshal(body, &in); err != nil || len(in.Requests) == 0 || len(in.Requests) > 20 {
		s.problem("a batch must hold 1 to 20 requests: %d (%v)", len(in.Requests), err)
		s.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, nil, graphError("BadRequest", "Invalid batch payload."))
		return
	}
	s.mu.Unlock()
	ids := map[string]bool{}
	var responses []any
	for _, req := range in.Requests {
		if req.ID == "" || ids[req.ID] || !strings.HasPrefix(req.URL, "/") {
			s.mu.Lock()
			s.problem("a batch request needs a unique id and a URL relative to the version: %q %q", req.ID, req.URL)
			s.mu.Unlock()
		}
		ids[req.ID] = true
		if len(req.Body) > 0 && req.Headers["Content-Type"] != "application/json" {
			s.mu.Lock()
			s.problem("a batch request with a body needs its Content-Type header: %s %s", req.Method, req.URL)
			s.mu.Unlock()
		}
		path, query, _ := strings.Cut(req.URL, "?")
		status, header, answer := s.serve(req.Method, path, query, req.Body)
		headers := map[string]string{}
		for k := range header {
			headers[k] = header.Get(k)
		}
		responses = append(responses, map[string]any{"id": req.ID, "status": status, "headers": headers, "body": answer})
	}
	writeJSON(w, http.StatusOK, nil, map[string]any{"responses": responses})
}

func randomID() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newID is a directory object id: a GUID.
func (s *Server) newID() string {
	s.nextID++
	return fmt.Sprintf("%08x-0000-4000-8000-%012d", s.nextID, s.nextID)
}

func clone(m map[string]any) map[string]any {
	data, _ := json.Marshal(m)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		panic(err) // what json.Marshal wrote
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
