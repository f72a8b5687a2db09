// Package ldap reads people and groups from OpenLDAP or Active Directory: paged search
// (RFC 2696) for full syncs, and for changes between them RFC 4533 content
// synchronization (syncrepl, refreshAndPersist) where the server offers it, Active
// Directory DirSync, or modifyTimestamp polling.
package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// dialer connects and binds to one server.
type dialer struct {
	url      string
	security identityv1alpha1.LDAPSecurity
	tls      *tls.Config
	bindDN   string
	password string
	timeout  time.Duration
}

func newDialer(ctx context.Context, c identityv1alpha1.LDAPConnection, secrets connectors.SecretReader) (*dialer, error) {
	password, err := secrets.SecretValue(ctx, c.PasswordSecretRef.Name, c.PasswordSecretRef.Key)
	if err != nil {
		return nil, fmt.Errorf("bind password: %w", err)
	}
	d := &dialer{url: c.URL, security: c.Security, bindDN: c.BindDN, password: string(password), timeout: 30 * time.Second}
	if d.security == "" {
		d.security = identityv1alpha1.LDAPSecurityStartTLS
		if strings.HasPrefix(c.URL, "ldaps://") {
			d.security = identityv1alpha1.LDAPSecurityTLS
		}
	}
	if d.security != identityv1alpha1.LDAPSecurityNone {
		d.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLS != nil {
			d.tls.ServerName = c.TLS.ServerName
			if ref := c.TLS.CASecretRef; ref != nil {
				ca, err := secrets.SecretValue(ctx, ref.Name, ref.Key)
				if err != nil {
					return nil, fmt.Errorf("CA certificate: %w", err)
				}
				pool, _ := x509.SystemCertPool()
				if pool == nil {
					pool = x509.NewCertPool()
				}
				if !pool.AppendCertsFromPEM(ca) {
					return nil, &connectors.PermanentError{Message: "the CA certificate is not valid PEM"}
				}
				d.tls.RootCAs = pool
			}
		}
		if d.tls.ServerName == "" {
			if host, _, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(c.URL, "ldaps://"), "ldap://")); err == nil {
				d.tls.ServerName = host
			}
		}
	}
	return d, nil
}

// dial connects, secures and binds within the dialer's timeout. Every later operation
// on the connection times out after as long, and the connection closes when ctx ends,
// which abandons whatever is in flight. Call close when done.
func (d *dialer) dial(ctx context.Context) (*goldap.Conn, func(), error) {
	conn, err := d.bound(ctx)
	if err != nil {
		return nil, nil, err
	}
	abandon := context.AfterFunc(ctx, func() { conn.Close() })
	return conn, func() { abandon(); conn.Close() }, nil
}

// bound connects, secures and binds within the dialer's timeout; each later operation
// times out after as long. The connection outlives ctx: the caller closes it.
func (d *dialer) bound(ctx context.Context) (*goldap.Conn, error) {
	setup, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	timedOut := func(err error) error {
		if setup.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("no answer within %s: %w", d.timeout, setup.Err())
		}
		return err
	}
	raw, err := d.connect(setup)
	if err != nil {
		return nil, classify("connecting", timedOut(err))
	}
	conn := goldap.NewConn(raw, d.security == identityv1alpha1.LDAPSecurityTLS)
	conn.Start()
	abandonSetup := context.AfterFunc(setup, func() { conn.Close() })
	fail := func(what string, err error) (*goldap.Conn, error) {
		conn.Close()
		return nil, classify(what, timedOut(err))
	}
	if d.security == identityv1alpha1.LDAPSecurityStartTLS {
		if err := conn.StartTLS(d.tls); err != nil {
			return fail("StartTLS", err)
		}
	}
	if err := conn.Bind(d.bindDN, d.password); err != nil {
		return fail("binding as "+d.bindDN, err)
	}
	if !abandonSetup() {
		return fail("binding as "+d.bindDN, setup.Err())
	}
	conn.SetTimeout(d.timeout) // each operation from now on; setup is bounded as a whole
	return conn, nil
}

// connect opens the TCP connection, and for ldaps:// the TLS session, before ctx ends.
func (d *dialer) connect(ctx context.Context) (net.Conn, error) {
	u, err := url.Parse(d.url)
	if err != nil {
		return nil, &connectors.PermanentError{Message: "the url is not valid: " + err.Error()}
	}
	port := u.Port()
	if port == "" {
		port = "389"
		if u.Scheme == "ldaps" {
			port = "636"
		}
	}
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil || d.security != identityv1alpha1.LDAPSecurityTLS {
		return raw, err
	}
	secured := tls.Client(raw, d.tls)
	if err := secured.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return secured, nil
}

// classify maps an LDAP failure to the typed errors of package connectors.
func classify(what string, err error) error {
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return &connectors.PermanentError{Message: what + ": the server's certificate is not trusted: " + certErr.Err.Error()}
	}
	if msg := err.Error(); strings.Contains(msg, "failed to verify certificate") {
		// StartTLS reports the handshake failure as text only.
		return &connectors.PermanentError{Message: what + ": the server's certificate is not trusted: " + msg}
	}
	var ldapErr *goldap.Error
	if errors.As(err, &ldapErr) {
		result := goldap.LDAPResultCodeMap[ldapErr.ResultCode]
		switch ldapErr.ResultCode {
		case goldap.LDAPResultInvalidCredentials, goldap.LDAPResultInsufficientAccessRights, goldap.LDAPResultInappropriateAuthentication:
			return &connectors.PermanentError{Message: what + ": " + result, Err: connectors.ErrUnauthorized}
		case goldap.LDAPResultNoSuchObject:
			return fmt.Errorf("%s: %w", what, connectors.ErrNotFound)
		case goldap.LDAPResultEntryAlreadyExists:
			return fmt.Errorf("%s: %w", what, connectors.ErrConflict)
		case goldap.LDAPResultUnavailableCriticalExtension:
			return &connectors.PermanentError{Message: what + ": the server does not support it", Err: connectors.ErrUnsupported}
		case goldap.LDAPResultBusy, goldap.LDAPResultUnavailable, goldap.LDAPResultTimeLimitExceeded:
		default:
			if ldapErr.ResultCode < 80 { // the server's answer: retrying will not change it
				return &connectors.PermanentError{Message: fmt.Sprintf("%s: %s: %v", what, result, ldapErr.Err)}
			}
		}
	}
	return &connectors.TransientError{Err: fmt.Errorf("%s: %w", what, err)}
}
