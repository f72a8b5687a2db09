package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/rosterhq/roster/connectors/scim"
)

// The bench's SCIM apps run in a child process (this same binary, started with envApps
// set), so that the operator's memory and CPU are measured without theirs.
const (
	envApps  = "ROSTER_BENCH_APPS"
	appToken = "bench-app-token"
	// appsMemoryLimit is the apps' soft memory limit. They hold about 3.5 KiB an account,
	// 3.4 GiB at 50,000 × 20; with the collector's default of twice the live heap and the
	// garbage of twenty listings they took 11 GiB, and beside the API server and the
	// operator the machine ran out of memory in the resync.
	appsMemoryLimit = 6 << 30
	// statsAttempts is how many times a read of the apps' counts is tried.
	statsAttempts = 3
)

// ServeIfChild does a child process's work and exits when the process was started as
// the bench's app server or as one size of a scale run; otherwise it returns at once.
// Call it first in main and TestMain.
func ServeIfChild() {
	if os.Getenv(envApps) == "" { // checked first: a size's own app server inherits envRun
		if spec := os.Getenv(envRun); spec != "" {
			runChild(spec)
		}
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(l.Addr().String())
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(appsMemoryLimit)
	}
	go func() { // the parent holds stdin open for as long as it runs
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	srv := &http.Server{Handler: newAppServer(), ReadHeaderTimeout: 10 * time.Second}
	_ = srv.Serve(l)
	os.Exit(1)
}

// AppConfig describes one app: its latency and its write budget (0: unlimited), beyond
// which it answers 429 with Retry-After.
type AppConfig struct {
	Name            string        `json:"name"`
	Latency         time.Duration `json:"latency"`
	WritesPerMinute int           `json:"writesPerMinute"`
	WriteBurst      int           `json:"writeBurst"`
}

// AppStats is what an app has seen and holds.
type AppStats struct {
	// Requests counts requests by method and path pattern, for example "POST /Users".
	Requests   map[string]int64 `json:"requests"`
	Throttled  int64            `json:"throttled"`
	Writes     int64            `json:"writes"` // successful writes
	FirstWrite time.Time        `json:"firstWrite"`
	LastWrite  time.Time        `json:"lastWrite"`
	Users      int              `json:"users"`
	Active     int              `json:"active"`
	// Members counts the members of each group.
	Members map[string]int `json:"members"`
}

// Total is the number of requests of every kind.
func (s AppStats) Total() int64 {
	var n int64
	for _, c := range s.Requests {
		n += c
	}
	return n
}

// Count sums the requests whose kind starts with prefix.
func (s AppStats) Count(prefix string) int64 {
	var n int64
	for k, c := range s.Requests {
		if strings.HasPrefix(k, prefix) {
			n += c
		}
	}
	return n
}

// Reads counts the GET requests.
func (s AppStats) Reads() int64 { return s.Count("GET ") }

// AccountState is one account of an app, for verification.
type AccountState struct {
	UserName string   `json:"userName"`
	Active   bool     `json:"active"`
	Groups   []string `json:"groups"`
}

type appServer struct {
	mu   sync.RWMutex
	apps map[string]*benchApp
}

type benchApp struct {
	cfg    AppConfig
	store  *scim.MemoryStore
	scim   http.Handler
	writes *rate.Limiter // nil: unlimited

	mu          sync.Mutex
	requests    map[string]int64
	throttled   int64
	okWrites    int64
	first, last time.Time
	deactivated map[string]time.Time // lower-cased userName → when first seen inactive
}

func newAppServer() *appServer { return &appServer{apps: map[string]*benchApp{}} }

func newBenchApp(cfg AppConfig) *benchApp {
	a := &benchApp{cfg: cfg, store: scim.NewMemoryStore(), requests: map[string]int64{}, deactivated: map[string]time.Time{}}
	a.scim = scim.NewServer(scim.ServerOptions{Store: a.store, Authorize: func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer "+appToken
	}})
	if cfg.WritesPerMinute > 0 {
		a.writes = rate.NewLimiter(rate.Limit(float64(cfg.WritesPerMinute)/60), max(1, cfg.WriteBurst))
	}
	return a
}

func (s *appServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/control/apps" && r.Method == http.MethodPost:
		var cfg AppConfig
		if err := json.NewDecoder(r.Body).Decode(&cfg); err != nil || cfg.Name == "" {
			http.Error(w, "bad app config", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.apps[cfg.Name] = newBenchApp(cfg)
		s.mu.Unlock()
	case r.URL.Path == "/control/goroutines":
		_ = pprof.Lookup("goroutine").WriteTo(w, 2)
	case r.URL.Path == "/control/stats":
		out := map[string]AppStats{}
		for name, a := range s.all() {
			out[name] = a.stats()
		}
		writeJSON(w, out)
	case r.URL.Path == "/control/deactivated":
		users := strings.Split(r.URL.Query().Get("users"), ",")
		out := map[string]map[string]time.Time{}
		for name, a := range s.all() {
			out[name] = a.deactivatedAt(users)
		}
		writeJSON(w, out)
	case r.URL.Path == "/control/accounts":
		a := s.app(r.URL.Query().Get("app"))
		if a == nil {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, a.accounts())
	case strings.HasPrefix(r.URL.Path, "/apps/"):
		name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/apps/"), "/")
		a := s.app(name)
		if a == nil || !strings.HasPrefix(rest, "scim/v2") {
			http.NotFound(w, r)
			return
		}
		http.StripPrefix("/apps/"+name+"/scim/v2", a).ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *appServer) app(name string) *benchApp {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.apps[name]
}

func (s *appServer) all() map[string]*benchApp {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]*benchApp, len(s.apps))
	for k, v := range s.apps {
		out[k] = v
	}
	return out
}

// ServeHTTP serves SCIM after the app's latency, within its write budget, counting.
func (a *benchApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Latency > 0 {
		time.Sleep(a.cfg.Latency)
	}
	kind := requestKind(r)
	write := r.Method != http.MethodGet
	if write && a.writes != nil {
		now := time.Now()
		res := a.writes.ReserveN(now, 1)
		if wait := res.DelayFrom(now); wait > 0 {
			res.CancelAt(now)
			a.mu.Lock()
			a.throttled++
			a.requests[kind]++
			a.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"429","detail":"write budget exceeded"}`))
			return
		}
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	a.scim.ServeHTTP(rec, r)
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests[kind]++
	if !write || rec.status >= 300 {
		return
	}
	a.okWrites++
	if a.first.IsZero() {
		a.first = now
	}
	a.last = now
	if id, ok := strings.CutPrefix(r.URL.Path, "/Users/"); ok && r.Method != http.MethodDelete {
		if res, err := a.store.Get(r.Context(), scim.Users, id); err == nil && !res.Active() {
			name, _ := res["userName"].(string)
			if _, seen := a.deactivated[strings.ToLower(name)]; !seen {
				a.deactivated[strings.ToLower(name)] = now
			}
		}
	}
}

// requestKind names a request by method and path pattern: "GET /Users" is a page,
// "GET /Users?filter" a lookup, "PATCH /Users/{id}" a change.
func requestKind(r *http.Request) string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	kind := r.Method + " /" + parts[0]
	switch {
	case len(parts) > 1:
		kind += "/{id}"
	case r.URL.Query().Get("filter") != "":
		kind += "?filter"
	}
	return kind
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (a *benchApp) stats() AppStats {
	a.mu.Lock()
	st := AppStats{Requests: map[string]int64{}, Throttled: a.throttled, Writes: a.okWrites, FirstWrite: a.first, LastWrite: a.last, Members: map[string]int{}}
	for k, v := range a.requests {
		st.Requests[k] = v
	}
	a.mu.Unlock()
	a.store.Range(scim.Users, func(r scim.Resource) bool {
		st.Users++
		if r.Active() {
			st.Active++
		}
		return true
	})
	a.store.Range(scim.Groups, func(r scim.Resource) bool {
		name, _ := r["displayName"].(string)
		members, _ := r["members"].([]any)
		st.Members[name] = len(members)
		return true
	})
	return st
}

func (a *benchApp) deactivatedAt(users []string) map[string]time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]time.Time{}
	for _, u := range users {
		if at, ok := a.deactivated[strings.ToLower(u)]; ok {
			out[strings.ToLower(u)] = at
		}
	}
	return out
}

func (a *benchApp) accounts() []AccountState {
	byID := map[string]*AccountState{}
	var out []*AccountState
	a.store.Range(scim.Users, func(r scim.Resource) bool {
		name, _ := r["userName"].(string)
		acc := &AccountState{UserName: name, Active: r.Active()}
		byID[r.ID()] = acc
		out = append(out, acc)
		return true
	})
	a.store.Range(scim.Groups, func(r scim.Resource) bool {
		name, _ := r["displayName"].(string)
		members, _ := r["members"].([]any)
		for _, m := range members {
			value, _ := m.(map[string]any)["value"].(string)
			if acc := byID[value]; acc != nil {
				acc.Groups = append(acc.Groups, name)
			}
		}
		return true
	})
	list := make([]AccountState, len(out))
	for i, acc := range out {
		list[i] = *acc
	}
	return list
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// apps is the parent's handle on the app server.
type apps struct {
	base  string
	http  *http.Client
	cmd   *exec.Cmd
	stdin io.WriteCloser
	// profileDir is where the stacks of an app server that stops answering go.
	profileDir string
}

// startApps starts the app server as a child process.
func startApps(profileDir string) (*apps, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envApps+"=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the app server: %w", err)
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("the app server did not start: %w", err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	return &apps{base: "http://" + strings.TrimSpace(addr), http: &http.Client{Transport: transport, Timeout: time.Minute}, cmd: cmd, stdin: stdin, profileDir: profileDir}, nil
}

func (a *apps) stop() {
	_ = a.stdin.Close()
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
}

// url is an app's SCIM base URL.
func (a *apps) url(name string) string { return a.base + "/apps/" + name + "/scim/v2" }

// configure creates an app, or empties and reconfigures it.
func (a *apps) configure(cfg AppConfig) error {
	body, _ := json.Marshal(cfg)
	resp, err := a.http.Post(a.base+"/control/apps", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("configuring app %s: %s", cfg.Name, resp.Status)
	}
	return nil
}

func (a *apps) get(path string, into any) error {
	resp, err := a.http.Get(a.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(path + ": " + resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// stats reads every app's counts. A read that times out is tried again, up to
// statsAttempts times: at 50,000 × 20 the apps' process, sharing two cores with the
// operator and the API server, once took more than the client's minute to answer, and
// one slow answer should not end an hour's run.
func (a *apps) stats() (map[string]AppStats, error) {
	var err error
	for range statsAttempts {
		out := map[string]AppStats{}
		var timeout net.Error
		if err = a.get("/control/stats", &out); !errors.As(err, &timeout) || !timeout.Timeout() {
			return out, err
		}
	}
	return nil, fmt.Errorf("%w%s", err, a.dumpGoroutines())
}

// dumpGoroutines writes the stacks of the app server's process into the profile
// directory, so that apps that stop answering say where they wait, and names the file.
func (a *apps) dumpGoroutines() string {
	resp, err := a.http.Get(a.base + "/control/goroutines")
	if err != nil {
		return "; its goroutines could not be read: " + err.Error()
	}
	defer resp.Body.Close()
	return saveStacks(a.profileDir, "apps-stuck", "the app server's goroutines", func(w io.Writer) error {
		_, err := io.Copy(w, resp.Body)
		return err
	})
}

// deactivated tells when each app first saw each of these users' accounts inactive.
func (a *apps) deactivated(users []string) (map[string]map[string]time.Time, error) {
	out := map[string]map[string]time.Time{}
	return out, a.get("/control/deactivated?users="+strings.Join(users, ","), &out)
}

func (a *apps) accounts(app string) ([]AccountState, error) {
	var out []AccountState
	return out, a.get("/control/accounts?app="+app, &out)
}
