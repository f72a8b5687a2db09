// Package samba starts a real Active Directory domain controller (Debian's Samba AD DC)
// on loopback, for tests of Roster's LDAP connectors against Active Directory.
//
// Provisioning a domain takes tens of seconds, so it happens once per machine and
// Samba version into a template directory; each server is a copy of the template,
// started on a loopback address of its own (Samba's LDAP ports cannot be moved, and
// Linux routes all of 127.0.0.0/8 to the loopback interface), so that tests and test
// packages run side by side.
package samba

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rosterhq/roster/test/ldapadmin"
	"github.com/rosterhq/roster/test/testcert"
)

// The domain every server holds.
const (
	Realm    = "ROSTER.TEST"
	Domain   = "ROSTER"
	BaseDN   = "DC=roster,DC=test"
	AdminDN  = "CN=Administrator,CN=Users," + BaseDN
	Password = "Adm1n-Secret!"
)

// Server is a running domain controller.
type Server struct {
	// URL is ldap://<address>:389 (StartTLS or plain); LDAPSURL is ldaps://<address>:636.
	URL, LDAPSURL string
	// CA is the PEM certificate of the CA that signed the server's certificate (for
	// its loopback address and localhost).
	CA     []byte
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *bytes.Buffer
}

const config = `[global]
	netbios name = DC1
	realm = {{.Realm}}
	workgroup = {{.Domain}}
	server role = active directory domain controller
	server services = ldap
	interfaces = {{.Address}}/8
	bind interfaces only = yes
	private dir = {{.Dir}}/private
	state directory = {{.Dir}}/state
	cache directory = {{.Dir}}/cache
	lock directory = {{.Dir}}
	pid directory = {{.Dir}}
	binddns dir = {{.Dir}}/bind-dns
	log file = {{.Dir}}/samba.log
	log level = 1
	ldap server require strong auth = no
	tls enabled = yes
	tls keyfile = {{.Dir}}/tls/server.key
	tls certfile = {{.Dir}}/tls/server.pem
	tls cafile = {{.Dir}}/tls/ca.pem
`

// Start starts a domain controller that stops with the test.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Run(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Run starts a domain controller from a copy of the template in dir. Stop stops it.
func Run(dir string) (*Server, error) {
	if _, err := exec.LookPath("samba"); err != nil {
		return nil, errors.New("samba is not installed: run make test, which installs samba-ad-dc with apt-get")
	}
	tmpl, err := provisioned()
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("cp", "-a", tmpl+"/.", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying the domain template: %v: %s", err, out)
	}
	var last error
	for range 5 {
		s, err := start(dir, freeAddress())
		if err == nil {
			return s, nil
		}
		last = err
	}
	return nil, last
}

func start(dir, address string) (*Server, error) {
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return nil, err
	}
	ca, err := testcert.Write(tlsDir, net.ParseIP(address))
	if err != nil {
		return nil, err
	}
	var conf bytes.Buffer
	_ = template.Must(template.New("").Parse(config)).Execute(&conf, map[string]string{
		"Realm": Realm, "Domain": Domain, "Address": address, "Dir": dir,
	})
	confPath := filepath.Join(dir, "test.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	s := &Server{
		URL: "ldap://" + address + ":389", LDAPSURL: "ldaps://" + address + ":636",
		CA: ca, exited: make(chan struct{}), logs: &bytes.Buffer{},
	}
	s.cmd = exec.Command("samba", "-i", "-M", "single", "-s", confPath)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting samba: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := s.Dial()
		if err == nil {
			conn.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("samba exited before it served LDAP on %s: %s", address, s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("samba did not serve LDAP on %s within a minute: %v\n%s", address, err, s.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the domain controller.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// freeAddress picks a loopback address whose LDAP ports nothing listens on.
func freeAddress() string {
	for {
		address := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(150), rand.IntN(250), 1+rand.IntN(250))
		free := true
		for _, port := range []string{"389", "636", "3268", "3269"} {
			l, err := net.Listen("tcp", net.JoinHostPort(address, port))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return address
		}
	}
}

// provisioned returns the template domain, provisioning it the first time on this
// machine for this Samba version; a file lock keeps test packages that start at once
// from provisioning it twice.
func provisioned() (string, error) {
	version, err := exec.Command("samba", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("samba --version: %w", err)
	}
	root := filepath.Join(os.TempDir(), "roster-samba-"+strings.NewReplacer(" ", "-", "\n", "", "/", "-").Replace(strings.TrimSpace(string(version))))
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(root, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	tmpl := filepath.Join(root, "template")
	if _, err := os.Stat(filepath.Join(tmpl, "provisioned")); err == nil {
		return tmpl, nil
	}
	_ = os.RemoveAll(tmpl)
	if err := os.MkdirAll(tmpl, 0o700); err != nil {
		return "", err
	}
	cmd := exec.Command("samba-tool", "domain", "provision", "--server-role=dc", "--dns-backend=NONE",
		"--realm="+Realm, "--domain="+Domain, "--adminpass="+Password, "--host-name=dc1",
		"--targetdir="+tmpl, "--option=interfaces=127.0.0.1/8", "--option=bind interfaces only=yes")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("provisioning the test domain: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(tmpl, "provisioned"), nil, 0o600); err != nil {
		return "", err
	}
	return tmpl, nil
}

// Dial connects as the domain's Administrator over plain LDAP.
func (s *Server) Dial() (*goldap.Conn, error) { return s.admin().Dial() }

// Do runs op on a connection as the Administrator, failing the test on error.
func (s *Server) Do(t testing.TB, op func(*goldap.Conn) error) { t.Helper(); s.admin().Do(t, op) }

func (s *Server) admin() ldapadmin.Admin {
	return ldapadmin.Admin{URL: s.URL, DN: AdminDN, Password: Password}
}

// AddOU adds an organizational unit, such as "OU=people," + BaseDN.
func (s *Server) AddOU(t testing.TB, dn string) {
	t.Helper()
	s.Do(t, func(c *goldap.Conn) error {
		req := goldap.NewAddRequest(dn, nil)
		req.Attribute("objectClass", []string{"organizationalUnit"})
		return c.Add(req)
	})
}

// AddPerson adds an enabled user named sam (userPrincipalName sam@roster.test) to the
// OU at ou, and returns its DN.
func (s *Server) AddPerson(t testing.TB, ou, sam, department string) string {
	t.Helper()
	dn := "CN=" + sam + "," + ou
	s.Do(t, func(c *goldap.Conn) error {
		req := goldap.NewAddRequest(dn, nil)
		req.Attribute("objectClass", []string{"user"})
		req.Attribute("sAMAccountName", []string{sam})
		req.Attribute("userPrincipalName", []string{sam + "@" + strings.ToLower(Realm)})
		req.Attribute("givenName", []string{sam})
		req.Attribute("sn", []string{"Person"})
		req.Attribute("mail", []string{sam + "@roster.test"})
		req.Attribute("department", []string{department})
		req.Attribute("userAccountControl", []string{"512"})
		return c.Add(req)
	})
	return dn
}

// AddGroup adds a global security group to the OU at ou with members by DN, and
// returns its DN.
func (s *Server) AddGroup(t testing.TB, ou, name string, members ...string) string {
	t.Helper()
	dn := "CN=" + name + "," + ou
	s.Do(t, func(c *goldap.Conn) error {
		req := goldap.NewAddRequest(dn, nil)
		req.Attribute("objectClass", []string{"group"})
		req.Attribute("sAMAccountName", []string{name})
		if len(members) > 0 {
			req.Attribute("member", members)
		}
		return c.Add(req)
	})
	return dn
}

// Modify changes an entry.
func (s *Server) Modify(t testing.TB, dn string, change func(*goldap.ModifyRequest)) {
	t.Helper()
	s.Do(t, func(c *goldap.Conn) error {
		req := goldap.NewModifyRequest(dn, nil)
		change(req)
		return c.Modify(req)
	})
}

// Delete deletes an entry.
func (s *Server) Delete(t testing.TB, dn string) {
	t.Helper()
	s.Do(t, func(c *goldap.Conn) error { return c.Del(goldap.NewDelRequest(dn, nil)) })
}
