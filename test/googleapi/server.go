// Package googleapi is a Google Workspace account on loopback for tests: the Admin SDK
// Directory API's users, groups, members and batch requests, the Reports API's admin
// activity (every change made to the account, by Roster or by an admin), and Google's
// OAuth 2.0 token endpoint for service accounts (a JWT signed with the service
// account's key, acting for an admin). Every request and answer is checked against the
// APIs' discovery documents that ship with Google's Go client, and every call against
// the scopes the token was granted; what departs from them is kept as a problem for
// the test to fail on.
package googleapi

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	keyID       = "roster-test-key"
	clientEmail = "roster@roster-test.iam.gserviceaccount.com"
	customerID  = "C0roster"
	apiPrefix   = "/admin/directory/v1/"
	maxBatch    = 1000
)

// Options shape the account.
type Options struct {
	// Domain is the account's verified domain; "" is example.com.
	Domain string
	// Admin is the admin the service account may act for; "" is admin@<Domain>.
	Admin string
	// MaxPage is the most items a page holds whatever maxResults asks, as Google may
	// answer with fewer; 0 is 100.
	MaxPage int
	// Delegated are the scopes the service account's domain-wide delegation grants;
	// nil grants the user and group scopes.
	Delegated []string
}

// Server is the account.
type Server struct {
	URL string
	// Key is the service account's JSON key, its token_uri this server's.
	Key []byte

	opts      Options
	directory *Discovery
	reports   *Discovery
	public    *rsa.PublicKey
	http      *httptest.Server

	mu       sync.Mutex
	users    []map[string]any          // in creation order
	userKeys map[string]map[string]any // by lower-cased id, primary email and alias
	groups   []map[string]any
	members  map[string][]string // group id → user ids
	tokens   map[string]grant
	problems []string
	calls    map[string]int
	batches  int
	throttle struct {
		left   int
		status int
	}
	nextID     int
	activities []activity // oldest first
}

type grant struct {
	scopes  []string
	expires time.Time
}

// Start serves an account on loopback.
func Start(opts Options) (*Server, error) {
	if opts.Domain == "" {
		opts.Domain = "example.com"
	}
	if opts.Admin == "" {
		opts.Admin = "admin@" + opts.Domain
	}
	if opts.MaxPage == 0 {
		opts.MaxPage = 100
	}
	if opts.Delegated == nil {
		opts.Delegated = []string{"https://www.googleapis.com/auth/admin.directory.user", "https://www.googleapis.com/auth/admin.directory.group"}
	}
	d, err := DirectoryDiscovery()
	if err != nil {
		return nil, err
	}
	reports, err := ReportsDiscovery()
	if err != nil {
		return nil, err
	}
	private, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, directory: d, reports: reports, public: &private.PublicKey, members: map[string][]string{}, userKeys: map[string]map[string]any{},
		tokens: map[string]grant{}, calls: map[string]int{}, nextID: 100000000000000000}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /batch", s.batch)
	mux.HandleFunc(apiPrefix, s.api)
	mux.HandleFunc("/admin/reports/v1/", s.api)
	s.http = httptest.NewServer(mux)
	s.URL = s.http.URL + "/"
	der, err := x509.MarshalPKCS8PrivateKey(private)
	if err != nil {
		return nil, err
	}
	s.Key, err = json.Marshal(map[string]string{
		"type": "service_account", "project_id": "roster-test", "private_key_id": keyID,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": clientEmail, "client_id": "1234567890", "token_uri": s.http.URL + "/token",
	})
	return s, err
}

// Close stops the server.
func (s *Server) Close() { s.http.Close() }

// Problems are the departures from the discovery document seen so far.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

// Calls is how many calls of a method (its discovery id, "directory.users.insert")
// were made, in batches or alone.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Batches is how many batch requests were sent.
func (s *Server) Batches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches
}

// Throttle answers the next n calls with status (403 userRateLimitExceeded or 429
// rateLimitExceeded, as Google does).
func (s *Server) Throttle(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle.left, s.throttle.status = n, status
}

// User is a user as Google holds it, by primary email or id; nil if none.
func (s *Server) User(key string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.findUser(key); u != nil {
		return clone(u)
	}
	return nil
}

// Members are the primary emails of a group's members, by the group's email.
func (s *Server) Members(groupEmail string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.findGroup(groupEmail)
	if g == nil {
		return nil
	}
	var emails []string
	for _, id := range s.members[g["id"].(string)] {
		if u := s.findUser(id); u != nil {
			emails = append(emails, u["primaryEmail"].(string))
		}
	}
	slices.Sort(emails)
	return emails
}

// AddUser puts a user in the account as an admin would, outside Roster.
func (s *Server) AddUser(email, given, family string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.newUser(map[string]any{"primaryEmail": email, "name": map[string]any{"givenName": given, "familyName": family}})
	return u["id"].(string)
}

func (s *Server) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// token is Google's OAuth 2.0 token endpoint for a service account's JWT.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type")
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(t *jwt.Token) (any, error) {
		if t.Header["kid"] != keyID {
			return nil, fmt.Errorf("unknown key id %v", t.Header["kid"])
		}
		return s.public, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(clientEmail), jwt.WithAudience(s.http.URL+"/token"),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature: "+err.Error())
		return
	}
	if exp, _ := claims.GetExpirationTime(); exp == nil || time.Until(exp.Time) > time.Hour+time.Minute {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)")
		return
	}
	if sub, _ := claims["sub"].(string); !strings.EqualFold(sub, s.opts.Admin) {
		oauthError(w, http.StatusUnauthorized, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.")
		return
	}
	scope, _ := claims["scope"].(string)
	scopes := strings.Fields(scope)
	for _, sc := range scopes {
		if !slices.Contains(s.opts.Delegated, sc) {
			oauthError(w, http.StatusUnauthorized, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.")
			return
		}
	}
	token := "ya29." + randomID()
	s.mu.Lock()
	s.tokens[token] = grant{scopes: scopes, expires: time.Now().Add(time.Hour)}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// api serves one call of the Directory API.
func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	status, answer := s.call(r.Method, r.URL.Path, r.URL.Query(), r.Header.Get("Authorization"), body)
	writeJSON(w, status, answer)
}

func writeJSON(w http.ResponseWriter, status int, answer any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	if answer != nil {
		_ = json.NewEncoder(w).Encode(answer)
	}
}

// call checks a call against the discovery document and the token, and answers it.
func (s *Server) call(method, path string, query map[string][]string, authorization string, body []byte) (int, any) {
	d := s.directory
	if strings.HasPrefix(path, "/admin/reports/") {
		d = s.reports
	}
	m, params, ok := d.Find(method, strings.TrimPrefix(path, "/"))
	if !ok {
		s.problem("%s %s is no method of the Directory or Reports API", method, path)
		return apiError(http.StatusNotFound, "notFound", "Not Found")
	}
	var problems []string
	problems = append(problems, d.CheckQuery(m, query)...)
	problems = append(problems, d.CheckRequest(m, body)...)
	for _, p := range problems {
		s.problem("%s", p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[m.ID]++
	if status, answer, refused := s.authorize(m, authorization); refused {
		return status, answer
	}
	if s.throttle.left > 0 {
		s.throttle.left--
		if s.throttle.status == http.StatusTooManyRequests {
			return apiError(http.StatusTooManyRequests, "rateLimitExceeded", "Rate limit exceeded")
		}
		return apiError(http.StatusForbidden, "userRateLimitExceeded", "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'")
	}
	var in map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return apiError(http.StatusBadRequest, "parseError", "Parse Error")
		}
	}
	status, answer := s.serve(m.ID, params, query, in)
	if status/100 == 2 && answer != nil {
		data, _ := json.Marshal(answer)
		s.problems = append(s.problems, d.CheckResponse(m, data)...)
	}
	return status, answer
}

func (s *Server) authorize(m *Method, authorization string) (int, any, bool) {
	g, ok := s.tokens[strings.TrimPrefix(authorization, "Bearer ")]
	if !ok || !strings.HasPrefix(authorization, "Bearer ") || time.Now().After(g.expires) {
		status, answer := apiError(http.StatusUnauthorized, "authError", "Invalid Credentials")
		return status, answer, true
	}
	for _, sc := range g.scopes {
		if slices.Contains(m.Scopes, sc) {
			return 0, nil, false
		}
	}
	status, answer := apiError(http.StatusForbidden, "insufficientPermissions", "Request had insufficient authentication scopes.")
	return status, answer, true
}

func apiError(status int, reason, message string) (int, any) {
	return status, map[string]any{"error": map[string]any{"code": status, "message": message,
		"errors": []any{map[string]any{"message": message, "domain": "global", "reason": reason}}}}
}

// batch serves a batch request: each part is one call, answered in a part of its own.
func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/mixed" {
		s.problem("a batch request's Content-Type is %q, not multipart/mixed", r.Header.Get("Content-Type"))
		writeJSON(w, http.StatusBadRequest, nil)
		return
	}
	s.mu.Lock()
	s.batches++
	s.mu.Unlock()
	reader := multipart.NewReader(r.Body, params["boundary"])
	var out bytes.Buffer
	mw := multipart.NewWriter(&out)
	for n := 0; ; n++ {
		part, err := reader.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil || n >= maxBatch {
			s.problem("batch: %v (part %d; at most %d calls)", err, n, maxBatch)
			writeJSON(w, http.StatusBadRequest, nil)
			return
		}
		if part.Header.Get("Content-Type") != "application/http" {
			s.problem("batch: part %d is %q, not application/http", n, part.Header.Get("Content-Type"))
		}
		inner, err := http.ReadRequest(bufio.NewReader(part))
		if err != nil {
			s.problem("batch: part %d is no HTTP request: %v", n, err)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(inner.Body, 1<<20))
		status, answer := s.call(inner.Method, inner.URL.Path, inner.URL.Query(), r.Header.Get("Authorization"), body)
		header := textproto.MIMEHeader{"Content-Type": {"application/http"}}
		if id := part.Header.Get("Content-Id"); id != "" {
			header.Set("Content-Id", "<response-"+strings.Trim(id, "<>")+">")
		}
		pw, _ := mw.CreatePart(header)
		data := []byte{}
		if answer != nil {
			data, _ = json.Marshal(answer)
		}
		fmt.Fprintf(pw, "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", status, http.StatusText(status), len(data), data)
	}
	mw.Close()
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	_, _ = w.Write(out.Bytes())
}

func randomID() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ListenAddr is the server's address, for a proxy in front of it.
func (s *Server) ListenAddr() net.Addr { return s.http.Listener.Addr() }

func (s *Server) newID() string {
	s.nextID++
	return strconv.Itoa(s.nextID)
}
