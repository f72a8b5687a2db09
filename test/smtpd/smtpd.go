// Package smtpd is a mail server on loopback for tests: go-smtp's server, offering
// STARTTLS with a certificate of a test CA and AUTH PLAIN over TLS only, keeping every
// message it accepts.
package smtpd

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/mail"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/rosterhq/roster/test/testcert"
)

// Message is one message the server accepted.
type Message struct {
	From string
	To   []string
	// Header and Body are the message as parsed; Raw as received.
	Header mail.Header
	Body   string
	Raw    []byte
	// TLS: the message came over an encrypted connection; User logged in as.
	TLS  bool
	User string
}

// Server is a running mail server.
type Server struct {
	// Addr is host:port on loopback; CA is the PEM of the CA that signed its certificate.
	Addr string
	CA   []byte
	// Username and Password are the only credentials it accepts.
	Username, Password string

	mu       sync.Mutex
	messages []Message
	arrived  chan struct{}
}

// Start runs a server until the test ends. The password is random per server.
func Start(t *testing.T) *Server { return start(t, true) }

// StartWithoutTLS runs a server that offers no STARTTLS, as a misconfigured or
// downgraded one would.
func StartWithoutTLS(t *testing.T) *Server { return start(t, false) }

func start(t *testing.T, offerTLS bool) *Server {
	t.Helper()
	dir := t.TempDir()
	ca, err := testcert.Write(dir, net.ParseIP("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: l.Addr().String(), CA: ca, Username: "roster", Password: randomPassword(t), arrived: make(chan struct{}, 1)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{server: s, conn: c}, nil }))
	srv.Domain = "localhost"
	if offerTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func randomPassword(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	const letters = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// Messages are the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Arrived is signalled after each accepted message.
func (s *Server) Arrived() <-chan struct{} { return s.arrived }

type session struct {
	server *Server
	conn   *smtp.Conn
	msg    Message
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if _, secure := s.conn.TLSConnectionState(); !secure {
			return errors.New("log in over TLS only")
		}
		if user != s.server.Username || password != s.server.Password {
			return smtp.ErrAuthFailed
		}
		s.msg.User = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.msg.User == "" {
		return smtp.ErrAuthRequired
	}
	s.msg.From = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := s.msg
	m.Raw = raw
	_, m.TLS = s.conn.TLSConnectionState()
	parsed, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "not a mail message: " + err.Error()}
	}
	m.Header = parsed.Header
	body, _ := io.ReadAll(parsed.Body)
	m.Body = string(body)
	s.server.mu.Lock()
	s.server.messages = append(s.server.messages, m)
	s.server.mu.Unlock()
	select {
	case s.server.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (s *session) Reset()        { s.msg = Message{User: s.msg.User} }
func (s *session) Logout() error { return nil }
