package notify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
)

// email sends messages through an SMTP server, always encrypted.
type email struct {
	addr, host string
	implicit   bool // TLS from the first byte, else STARTTLS
	tls        *tls.Config
	username   string
	password   string
	from       string
	to         []string
	concerned  bool
}

// maxRecipients bounds the addresses of one message.
const maxRecipients = 100

func newEmail(ctx context.Context, spec *identityv1alpha1.EmailChannel, secrets connectors.SecretReader) (Channel, string, error) {
	port := cmp.Or(spec.Port, 587)
	e := &email{addr: net.JoinHostPort(spec.Host, strconv.Itoa(int(port))), host: spec.Host, implicit: spec.Security == identityv1alpha1.EmailTLS,
		from: spec.From, to: spec.To, concerned: spec.AlsoTo != identityv1alpha1.CopyNone}
	if spec.AuthSecretRef != nil {
		user, err := secrets.SecretValue(ctx, spec.AuthSecretRef.Name, "username")
		if err != nil {
			return nil, "Email", err
		}
		password, err := secrets.SecretValue(ctx, spec.AuthSecretRef.Name, "password")
		if err != nil {
			return nil, "Email", err
		}
		e.username, e.password = string(user), string(password)
	}
	var opts httpx.Options
	if err := httpx.FromSpec(ctx, &opts, nil, spec.TLS, secrets); err != nil {
		return nil, "Email", err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if len(opts.RootCAs) > 0 && !pool.AppendCertsFromPEM(opts.RootCAs) {
		return nil, "Email", &connectors.PermanentError{Message: "the CA Secret holds no PEM certificate"}
	}
	e.tls = &tls.Config{ServerName: cmp.Or(opts.ServerName, spec.Host), RootCAs: pool, MinVersion: tls.VersionTLS12}
	return e, "Email", nil
}

func (e *email) Send(ctx context.Context, m Message) error {
	to := e.recipients(m)
	if len(to) == 0 {
		return nil // nobody to write to: nothing to deliver
	}
	c, err := e.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if e.username != "" {
		if err := c.Auth(sasl.NewPlainClient("", e.username, e.password)); err != nil {
			return classifySMTP(fmt.Errorf("logging in to %s: %w", e.addr, err))
		}
	}
	if err := c.SendMail(e.from, to, bytes.NewReader(e.compose(m, to))); err != nil {
		return classifySMTP(fmt.Errorf("sending through %s: %w", e.addr, err))
	}
	return c.Quit()
}

// dial connects and secures the connection, all of it within sendTimeout or ctx.
func (e *email) dial(ctx context.Context) (*smtp.Client, error) {
	deadline := time.Now().Add(sendTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	raw, err := (&net.Dialer{Deadline: deadline}).DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", e.addr, err)
	}
	var conn net.Conn = &boundedConn{Conn: raw, until: deadline}
	context.AfterFunc(ctx, func() { _ = raw.Close() }) // a cancelled send stops at once
	if e.implicit {
		return smtp.NewClient(tls.Client(conn, e.tls)), nil
	}
	c, err := smtp.NewClientStartTLS(conn, e.tls)
	if err != nil {
		_ = raw.Close()
		return nil, classifySMTP(fmt.Errorf("starting TLS with %s: %w", e.addr, err))
	}
	return c, nil
}

// boundedConn keeps every deadline the SMTP client sets within one overall deadline.
type boundedConn struct {
	net.Conn
	until time.Time
}

func (c *boundedConn) SetDeadline(t time.Time) error {
	if t.IsZero() || t.After(c.until) {
		t = c.until
	}
	return c.Conn.SetDeadline(t)
}

// classifySMTP makes a refusal the server will repeat (5xx: a bad login, an address it
// will not take) permanent, and certificate problems too.
func classifySMTP(err error) error {
	var refused *smtp.SMTPError
	var untrusted *tls.CertificateVerificationError
	switch {
	case errors.As(err, &refused) && refused.Code >= 500:
		return &connectors.PermanentError{Status: refused.Code, Message: err.Error()}
	case errors.As(err, &untrusted):
		return &connectors.PermanentError{Message: err.Error()}
	case strings.Contains(err.Error(), "doesn't support STARTTLS"):
		return &connectors.PermanentError{Message: "the mail server does not offer STARTTLS; Roster never sends mail in clear text"}
	}
	return err
}

// recipients are the listed addresses and, where asked, the people the events
// concern; anything that is not a plain address is left out.
func (e *email) recipients(m Message) []string {
	all := slices.Clone(e.to)
	if e.concerned {
		all = append(all, m.To...)
	}
	var out []string
	for _, a := range all {
		parsed, err := mail.ParseAddress(a)
		if err != nil || parsed.Name != "" || strings.ContainsAny(a, "\r\n<>") {
			continue
		}
		if !slices.Contains(out, parsed.Address) {
			out = append(out, parsed.Address)
		}
	}
	return out[:min(len(out), maxRecipients)]
}

// compose writes the message: headers encoded so that no text can add a header, the
// body quoted-printable UTF-8.
func (e *email) compose(m Message, to []string) []byte {
	var b bytes.Buffer
	sum := sha256.Sum256([]byte(idempotencyKey(m) + strings.Join(to, ",")))
	fmt.Fprintf(&b, "From: %s\r\n", e.from)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", oneLine(m.Title)))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@roster.invalid>\r\n", hex.EncodeToString(sum[:16]))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(plainText(m)))
	_ = qp.Close()
	return b.Bytes()
}

// plainText is the message as an email body.
func plainText(m Message) string {
	var b strings.Builder
	b.WriteString(m.Title + "\n\n")
	if m.Text != "" {
		b.WriteString(m.Text + "\n\n")
	}
	for _, f := range m.Facts {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, f.Value)
	}
	if m.Command != "" {
		fmt.Fprintf(&b, "\nTo act on it:\n\n    %s\n", m.Command)
	}
	fmt.Fprintf(&b, "\n-- \nRoster, namespace %s\n", namespaceOf(m))
	return strings.ReplaceAll(b.String(), "\n", "\r\n")
}
