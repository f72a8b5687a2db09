package bench

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// departments are the organisation's departments; each has a Role that grants every
// app, with the department's group.
var departments = []string{"engineering", "sales", "support", "finance", "marketing"}

var (
	givenNames  = []string{"Ada", "Grace", "Alan", "Barbara", "Ken", "Dennis", "Margaret", "Edsger", "Frances", "John", "Radia", "Donald", "Leslie", "Tim", "Sophie", "Linus"}
	familyNames = []string{"Lovelace", "Hopper", "Turing", "Liskov", "Thompson", "Ritchie", "Hamilton", "Dijkstra", "Allen", "Backus", "Perlman", "Knuth", "Lamport", "Berners", "Wilson", "Torvalds"}
	titles      = []string{"Engineer", "Senior Engineer", "Manager", "Analyst", "Specialist"}
	locations   = []string{"London", "Berlin", "Lisbon", "Remote"}
)

// reportsPerManager shapes the organisation: person i reports to person (i-1)/8.
const reportsPerManager = 8

// person is one row of the HR export.
type person struct {
	id, given, family, email, department, title, location, manager string
	active                                                         bool
}

// people makes n people with ids from first on; the first one of an organisation
// (first == 1) has no manager.
func people(prefix string, first, n int) []person {
	out := make([]person, n)
	for i := range n {
		num := first + i
		p := person{
			id:         fmt.Sprintf("%s%06d", prefix, num),
			given:      givenNames[num%len(givenNames)],
			family:     familyNames[(num/len(givenNames))%len(familyNames)],
			department: departments[num%len(departments)],
			title:      titles[num%len(titles)],
			location:   locations[num%len(locations)],
			active:     true,
		}
		p.email = fmt.Sprintf("%s.%s.%s%d@acme.example", strings.ToLower(p.given), strings.ToLower(p.family), strings.ToLower(prefix), num)
		if num > 1 {
			p.manager = fmt.Sprintf("%s%06d", prefix, (num-2)/reportsPerManager+1)
		}
		out[i] = p
	}
	return out
}

// csvOf writes an HR export.
func csvOf(ps []person) []byte {
	var b strings.Builder
	b.WriteString("id,firstName,lastName,email,department,title,location,manager,status\n")
	for _, p := range ps {
		status := "active"
		if !p.active {
			status = "terminated"
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s,%s,%s,%s,%s\n", p.id, p.given, p.family, p.email, p.department, p.title, p.location, p.manager, status)
	}
	return []byte(b.String())
}

// exports serves HR exports over HTTP, as an HR system's report URL would: one file per
// path, replaceable while it runs.
type exports struct {
	mu    sync.Mutex
	files map[string][]byte
	srv   *http.Server
	base  string
}

func startExports() (*exports, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &exports{files: map[string][]byte{}, base: "http://" + l.Addr().String()}
	e.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(l) }()
	return e, nil
}

func (e *exports) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	data, ok := e.files[r.URL.Path]
	e.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/csv")
	_, _ = w.Write(data)
}

// put publishes an export at path and returns its URL.
func (e *exports) put(path string, data []byte) string {
	e.mu.Lock()
	e.files[path] = data
	e.mu.Unlock()
	return e.base + path
}

func (e *exports) stop() { _ = e.srv.Close() }
