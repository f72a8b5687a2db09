package scim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/rosterhq/roster/connectors"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Store keeps the resources.
	Store Store
	// Authorize checks a request's credentials; nil lets every request in.
	Authorize func(*http.Request) bool
	// MaxResults is the largest page served; 0 means 1000.
	MaxResults int
	// MaxBodyBytes bounds a request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// DisablePatch answers PATCH with 501 and says so in /ServiceProviderConfig.
	DisablePatch bool
	// ETags turns on versioned writes (If-Match) and says so in /ServiceProviderConfig.
	ETags bool
	// CursorPaging offers cursor paging (RFC 9865) besides index paging.
	CursorPaging bool
}

// Server serves SCIM 2.0 Users and Groups from a Store, with discovery
// (/ServiceProviderConfig, /ResourceTypes, /Schemas). Mount it at the base URL with
// http.StripPrefix.
type Server struct {
	opts ServerOptions
}

// NewServer returns a Server.
func NewServer(opts ServerOptions) *Server {
	if opts.MaxResults <= 0 {
		opts.MaxResults = 1000
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	return &Server{opts: opts}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.Authorize != nil && !s.opts.Authorize(r) {
		WriteUnauthorized(w)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "ServiceProviderConfig" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.serviceProviderConfig())
	case len(parts) == 1 && parts[0] == "ResourceTypes" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, listOf(resourceTypes()))
	case len(parts) == 1 && parts[0] == "Schemas" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, listOf(schemas()))
	case len(parts) == 1 && (parts[0] == Users || parts[0] == Groups):
		s.serveCollection(w, r, parts[0])
	case len(parts) == 2 && (parts[0] == Users || parts[0] == Groups):
		s.serveResource(w, r, parts[0], parts[1])
	default:
		writeError(w, http.StatusNotFound, "", "no such endpoint: "+r.URL.Path)
	}
}

func (s *Server) serveCollection(w http.ResponseWriter, r *http.Request, typ string) {
	switch r.Method {
	case http.MethodGet:
		s.list(w, r, typ)
	case http.MethodPost:
		body, ok := readResource(w, r)
		if !ok {
			return
		}
		created, err := s.opts.Store.Create(r.Context(), typ, prepare(body, typ))
		if err != nil {
			writeStoreError(w, err)
			return
		}
		w.Header().Set("Location", location(r, created.ID()))
		s.writeResource(w, r, http.StatusCreated, created)
	default:
		writeError(w, http.StatusMethodNotAllowed, "", r.Method+" is not allowed here")
	}
}

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, typ, id string) {
	ctx := r.Context()
	ifMatch := ""
	if s.opts.ETags {
		ifMatch = r.Header.Get("If-Match")
	}
	var (
		res Resource
		err error
	)
	switch r.Method {
	case http.MethodGet:
		res, err = s.opts.Store.Get(ctx, typ, id)
	case http.MethodPut:
		body, ok := readResource(w, r)
		if !ok {
			return
		}
		res, err = s.opts.Store.Update(ctx, typ, id, ifMatch, func(current Resource) error {
			replaceAll(current, prepare(body, typ))
			return nil
		})
		res = res.Clone() // the store's own; writeResource drops attributes from it
	case http.MethodPatch:
		if s.opts.DisablePatch {
			writeError(w, http.StatusNotImplemented, "", "PATCH is not supported; use PUT")
			return
		}
		var patch PatchRequest
		if !readJSON(w, r, &patch) {
			return
		}
		res, err = s.opts.Store.Update(ctx, typ, id, ifMatch, func(current Resource) error {
			return ApplyPatch(current, patch.Operations)
		})
		if err == nil && typ == Groups {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		res = res.Clone()
	case http.MethodDelete:
		if err = s.opts.Store.Delete(ctx, typ, id); err == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	default:
		writeError(w, http.StatusMethodNotAllowed, "", r.Method+" is not allowed here")
		return
	}
	if err != nil {
		writeStoreError(w, err)
		return
	}
	s.writeResource(w, r, http.StatusOK, res)
}

// replaceAll is PUT: every attribute is replaced, except that id and meta stay and an
// omitted active keeps its value (Okta sends full PUTs without always carrying it).
func replaceAll(current, body Resource) {
	active, hadActive := current["active"]
	for k := range current {
		if k != "id" && k != "meta" {
			delete(current, k)
		}
	}
	for k, v := range body {
		if !strings.EqualFold(k, "id") && !strings.EqualFold(k, "meta") {
			current[k] = v
		}
	}
	if _, ok := findKey(current, "active"); !ok && hadActive {
		current["active"] = active
	}
}

// prepare normalises a client's resource: schemas set, booleans as booleans.
func prepare(r Resource, typ string) Resource {
	if _, ok := findKey(r, "schemas"); !ok {
		if typ == Users {
			r["schemas"] = []any{SchemaUser}
		} else {
			r["schemas"] = []any{SchemaGroup}
		}
	}
	for k, v := range r {
		r[k] = coerce(patchPath{Path: Path{Attr: k}}, v)
	}
	return r
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, typ string) {
	q := r.URL.Query()
	var filter Filter
	if expr := q.Get("filter"); expr != "" {
		f, err := ParseFilter(expr)
		if err != nil {
			writeError(w, http.StatusBadRequest, ErrInvalidFilter, err.Error())
			return
		}
		filter = f
	}
	count := s.opts.MaxResults
	if c, err := strconv.Atoi(q.Get("count")); err == nil && c >= 0 && c < count {
		count = c
	}
	start := 1
	cursorPaging := s.opts.CursorPaging && q.Has("cursor")
	if cursorPaging {
		var err error
		if start, err = decodeCursor(q.Get("cursor")); err != nil {
			writeError(w, http.StatusBadRequest, "invalidCursor", err.Error())
			return
		}
	} else if i, err := strconv.Atoi(q.Get("startIndex")); err == nil && i > 1 {
		start = i
	}
	page, total, err := s.page(r.Context(), typ, filter, start, count)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	resp := ListResponse{Schemas: []string{MessageListResponse}, TotalResults: total, ItemsPerPage: len(page), Resources: page}
	if cursorPaging {
		if next := start + len(page); next <= total && len(page) > 0 {
			resp.NextCursor = encodeCursor(next)
		}
	} else {
		resp.StartIndex = start
	}
	for i := range page {
		page[i] = project(page[i].Clone(), r)
	}
	writeJSON(w, http.StatusOK, resp)
}

// page is one page of a listing, from the start-th resource (1-based) on, and how
// many match in all. A PageStore builds only that page of an unfiltered listing.
func (s *Server) page(ctx context.Context, typ string, filter Filter, start, count int) ([]Resource, int, error) {
	if ps, ok := s.opts.Store.(PageStore); ok && filter == nil {
		return ps.ListPage(ctx, typ, start, count)
	}
	all, err := s.opts.Store.List(ctx, typ, filter)
	if err != nil {
		return nil, 0, err
	}
	return PageOf(all, start, count), len(all), nil
}

// PageOf is the part of all from the start-th element (1-based) on, at most count
// long; never nil, so that an empty page is written as [].
func PageOf[T any](all []T, start, count int) []T {
	from := min(start-1, len(all))
	return append([]T{}, all[from:min(len(all), from+count)]...)
}

func encodeCursor(index int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(index)))
}

func decodeCursor(c string) (int, error) {
	if c == "" {
		return 1, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, fmt.Errorf("cursor %q is not one this server gave", c)
	}
	i, err := strconv.Atoi(string(b))
	if err != nil || i < 1 {
		return 0, fmt.Errorf("cursor %q is not one this server gave", c)
	}
	return i, nil
}

func (s *Server) writeResource(w http.ResponseWriter, r *http.Request, status int, res Resource) {
	if s.opts.ETags && res.Version() != "" {
		w.Header().Set("ETag", res.Version())
	}
	writeJSON(w, status, project(res, r))
}

// project applies the attributes and excludedAttributes parameters (top-level names).
func project(res Resource, r *http.Request) Resource {
	DropNeverReturned(res)
	q := r.URL.Query()
	if exclude := q.Get("excludedAttributes"); exclude != "" {
		for _, name := range strings.Split(exclude, ",") {
			if k, ok := findKey(res, strings.TrimSpace(name)); ok && !strings.EqualFold(k, "id") {
				delete(res, k)
			}
		}
	}
	if include := q.Get("attributes"); include != "" {
		keep := map[string]bool{"id": true, "schemas": true, "meta": true}
		for _, name := range strings.Split(include, ",") {
			top, _, _ := strings.Cut(strings.TrimSpace(name), ".")
			keep[strings.ToLower(top)] = true
		}
		for k := range res {
			if !keep[strings.ToLower(k)] {
				delete(res, k)
			}
		}
	}
	return res
}

func (s *Server) serviceProviderConfig() ServiceProviderConfig {
	cfg := ServiceProviderConfig{
		Schemas:        []string{SchemaServiceProviderConfig},
		Patch:          Supported{Supported: Flag(!s.opts.DisablePatch)},
		Filter:         FilterConfig{Supported: true, MaxResults: s.opts.MaxResults},
		ETag:           Supported{Supported: Flag(s.opts.ETags)},
		ChangePassword: Supported{},
		Sort:           Supported{},
		AuthenticationSchemes: []AuthScheme{{
			Type: "oauthbearertoken", Name: "Bearer token", Description: "A bearer token in the Authorization header", Primary: true,
		}},
	}
	cfg.Pagination = &PaginationConfig{Cursor: Flag(s.opts.CursorPaging), Index: true, DefaultPaginationMethod: "index", MaxPageSize: s.opts.MaxResults}
	return cfg
}

// location is the URL of a resource just created under the collection requested.
func location(r *http.Request, id string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	path, _, _ := strings.Cut(r.RequestURI, "?")
	return fmt.Sprintf("%s://%s%s/%s", scheme, r.Host, strings.TrimSuffix(path, "/"), id)
}

func readResource(w http.ResponseWriter, r *http.Request) (Resource, bool) {
	var res Resource
	if !readJSON(w, r, &res) {
		return nil, false
	}
	if res == nil {
		writeError(w, http.StatusBadRequest, ErrInvalidSyntax, "the body must be a JSON object")
		return nil, false
	}
	return res, true
}

func readJSON(w http.ResponseWriter, r *http.Request, into any) bool {
	if err := json.NewDecoder(r.Body).Decode(into); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit))
			return false
		}
		writeError(w, http.StatusBadRequest, ErrInvalidSyntax, "the body is not valid JSON: "+err.Error())
		return false
	}
	return true
}

func writeStoreError(w http.ResponseWriter, err error) {
	var patchErr *PatchError
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		writeError(w, http.StatusNotFound, "", "resource not found")
	case errors.Is(err, connectors.ErrConflict):
		writeError(w, http.StatusConflict, ErrUniqueness, err.Error())
	case errors.Is(err, ErrVersionMismatch):
		writeError(w, http.StatusPreconditionFailed, "", err.Error())
	case errors.As(err, &patchErr):
		writeError(w, http.StatusBadRequest, patchErr.ScimType, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "", err.Error())
	}
}

// WriteError answers a SCIM error (RFC 7644 §3.12) as application/scim+json.
func WriteError(w http.ResponseWriter, status int, scimType, detail string) {
	writeError(w, status, scimType, detail)
}

// WriteUnauthorized answers 401 with a Bearer challenge.
func WriteUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="roster"`)
	writeError(w, http.StatusUnauthorized, "", "missing or invalid credentials")
}

func writeError(w http.ResponseWriter, status int, scimType, detail string) {
	writeJSON(w, status, Error{Schemas: []string{MessageError}, Status: strconv.Itoa(status), ScimType: scimType, Detail: detail})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", MediaType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func listOf(items []map[string]any) ListResponse {
	res := make([]Resource, len(items))
	for i, it := range items {
		res[i] = it
	}
	return ListResponse{Schemas: []string{MessageListResponse}, TotalResults: len(res), ItemsPerPage: len(res), StartIndex: 1, Resources: res}
}
