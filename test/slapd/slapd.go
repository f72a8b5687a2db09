// Package slapd starts a real OpenLDAP server (Debian's slapd) on loopback with a
// throwaway configuration, for tests of Roster's LDAP connectors.
package slapd

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"text/template"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rosterhq/roster/test/ldapadmin"
	"github.com/rosterhq/roster/test/testcert"
)

// Directory layout the server starts with.
const (
	BaseDN   = "dc=example,dc=com"
	AdminDN  = "cn=admin,dc=example,dc=com"
	Password = "admin-secret"
	People   = "ou=people," + BaseDN
	Groups   = "ou=groups," + BaseDN
)

// Server is a running slapd.
type Server struct {
	// URL is ldap://127.0.0.1:<port>; LDAPSURL is ldaps://localhost:<port>.
	URL, LDAPSURL string
	// CA is the PEM certificate of the CA that signed the server's certificate.
	CA  []byte
	cmd *exec.Cmd
}

const config = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
moduleload ppolicy
pidfile {{.Dir}}/slapd.pid
argsfile {{.Dir}}/slapd.args
TLSCACertificateFile {{.Dir}}/ca.pem
TLSCertificateFile {{.Dir}}/server.pem
TLSCertificateKeyFile {{.Dir}}/server.key
sizelimit unlimited
database mdb
suffix "{{.Base}}"
rootdn "{{.Admin}}"
rootpw {{.Password}}
directory {{.Dir}}/data
maxsize 1073741824
dbnosync
index objectClass,entryUUID,entryCSN eq
index uid,cn,member eq
overlay syncprov
syncprov-checkpoint 100 10
overlay ppolicy
limits dn.exact="{{.Admin}}" size=unlimited time=unlimited
`

// Start starts slapd and loads the base entries; it stops with the test.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Run(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Run starts slapd with its configuration and database in dir and loads the base
// entries. Stop stops it.
func Run(dir string) (*Server, error) {
	bin := "/usr/sbin/slapd"
	if _, err := os.Stat(bin); err != nil {
		return nil, errors.New("slapd is not installed: run make test, which installs it with apt-get")
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	ca, err := testcert.Write(dir, net.ParseIP("127.0.0.1"))
	if err != nil {
		return nil, err
	}
	var conf bytes.Buffer
	_ = template.Must(template.New("").Parse(config)).Execute(&conf, map[string]string{
		"Dir": dir, "Base": BaseDN, "Admin": AdminDN, "Password": Password,
	})
	if err := os.WriteFile(filepath.Join(dir, "slapd.conf"), conf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tlsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL:      fmt.Sprintf("ldap://127.0.0.1:%d", port),
		LDAPSURL: fmt.Sprintf("ldaps://localhost:%d", tlsPort),
		CA:       ca,
	}
	var logs bytes.Buffer
	s.cmd = exec.Command(bin, "-d", "0", "-f", filepath.Join(dir, "slapd.conf"),
		"-h", fmt.Sprintf("ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", port, tlsPort))
	s.cmd.Stdout, s.cmd.Stderr = &logs, &logs
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting slapd: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := s.Dial()
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("slapd did not come up: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	base := []*goldap.AddRequest{
		addRequest(BaseDN, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"Example"}}),
		addRequest(People, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}}),
		addRequest(Groups, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"groups"}}),
	}
	if err := s.AddAll(base); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops slapd.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// AddAll adds entries in order over one connection.
func (s *Server) AddAll(entries []*goldap.AddRequest) error {
	conn, err := s.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, e := range entries {
		if err := conn.Add(e); err != nil {
			return fmt.Errorf("adding %s: %w", e.DN, err)
		}
	}
	return nil
}

func addRequest(dn string, attrs map[string][]string) *goldap.AddRequest {
	req := goldap.NewAddRequest(dn, nil)
	for k, v := range attrs {
		req.Attribute(k, v)
	}
	return req
}

// Person is the entry of an inetOrgPerson under ou=people.
func Person(uid, given, family, department string) *goldap.AddRequest {
	return addRequest("uid="+uid+","+People, map[string][]string{
		"objectClass": {"inetOrgPerson"}, "uid": {uid}, "cn": {given + " " + family}, "givenName": {given}, "sn": {family},
		"mail": {uid + "@example.com"}, "departmentNumber": {department}, "title": {"Engineer"},
	})
}

// Dial connects as the admin.
func (s *Server) Dial() (*goldap.Conn, error) { return s.admin().Dial() }

func (s *Server) do(t testing.TB, op func(*goldap.Conn) error) { t.Helper(); s.admin().Do(t, op) }

func (s *Server) admin() ldapadmin.Admin {
	return ldapadmin.Admin{URL: s.URL, DN: AdminDN, Password: Password}
}

// Add adds an entry.
func (s *Server) Add(t testing.TB, dn string, attrs map[string][]string) {
	t.Helper()
	s.do(t, func(c *goldap.Conn) error { return c.Add(addRequest(dn, attrs)) })
}

// AddPerson adds an inetOrgPerson under ou=people.
func (s *Server) AddPerson(t testing.TB, uid, given, family, department string) string {
	t.Helper()
	req := Person(uid, given, family, department)
	s.do(t, func(c *goldap.Conn) error { return c.Add(req) })
	return req.DN
}

// AddGroup adds a groupOfNames under ou=groups with members by DN.
func (s *Server) AddGroup(t testing.TB, name string, members ...string) string {
	t.Helper()
	dn := "cn=" + name + "," + Groups
	s.Add(t, dn, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {name}, "member": members})
	return dn
}

// Modify replaces attributes of an entry.
func (s *Server) Modify(t testing.TB, dn string, replace map[string][]string) {
	t.Helper()
	req := goldap.NewModifyRequest(dn, nil)
	for k, v := range replace {
		req.Replace(k, v)
	}
	s.do(t, func(c *goldap.Conn) error { return c.Modify(req) })
}

// Delete deletes an entry.
func (s *Server) Delete(t testing.TB, dn string) {
	t.Helper()
	s.do(t, func(c *goldap.Conn) error { return c.Del(goldap.NewDelRequest(dn, nil)) })
}

// Lock locks an account the way the ppolicy overlay does.
func (s *Server) Lock(t testing.TB, dn string) {
	t.Helper()
	s.Modify(t, dn, map[string][]string{"pwdAccountLockedTime": {"000001010000Z"}})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
