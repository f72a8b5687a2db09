// Package ldapadmin connects to a test directory as its administrator.
package ldapadmin

import (
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
)

// Admin is a directory's URL and its administrator's credentials.
type Admin struct {
	URL, DN, Password string
}

// Dial connects and binds over plain LDAP.
func (a Admin) Dial() (*goldap.Conn, error) {
	conn, err := goldap.DialURL(a.URL)
	if err != nil {
		return nil, err
	}
	if err := conn.Bind(a.DN, a.Password); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Do runs op on a new connection, failing the test on error.
func (a Admin) Do(t testing.TB, op func(*goldap.Conn) error) {
	t.Helper()
	conn, err := a.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := op(conn); err != nil {
		t.Fatal(err)
	}
}
