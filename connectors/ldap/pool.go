package ldap

import (
	"context"
	"sync"

	goldap "github.com/go-ldap/ldap/v3"
)

// pool keeps bound connections for a target's writes and lookups, so that a create is
// one request on a connection already secured and bound, not a new TLS handshake and
// bind each time. A connection that failed or whose call was cancelled is dropped.
type pool struct {
	dialer *dialer
	mu     sync.Mutex
	idle   []*goldap.Conn
	max    int
}

func newPool(d *dialer, size int) *pool {
	return &pool{dialer: d, max: max(1, size)}
}

// do runs op on a pooled connection. ctx ending closes the connection, which ends op.
func (p *pool) do(ctx context.Context, op func(*goldap.Conn) error) error {
	conn, err := p.get(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err = op(conn)
	if !stop() || conn.IsClosing() {
		conn.Close()
		return err
	}
	p.put(conn)
	return err
}

func (p *pool) get(ctx context.Context) (*goldap.Conn, error) {
	p.mu.Lock()
	for len(p.idle) > 0 {
		conn := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !conn.IsClosing() {
			p.mu.Unlock()
			return conn, nil
		}
	}
	p.mu.Unlock()
	conn, err := p.dialer.bound(ctx)
	return conn, err
}

func (p *pool) put(conn *goldap.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= p.max {
		conn.Close()
		return
	}
	p.idle = append(p.idle, conn)
}

// close closes the idle connections.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
}
