// Package ldapcount is a proxy in front of a directory that counts the LDAP requests
// going through it, for tests and the bench that assert how many requests Roster sends.
package ldapcount

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// LDAP protocol operations the counter tells apart (RFC 4511 application tags).
const (
	opSearch      = 3
	opModify      = 6
	opAdd         = 8
	opAddResponse = 9
	opModifyDN    = 12
)

// Counter is a proxy in front of a directory that counts the requests going through it
// by operation, reading each LDAP message whole and passing its bytes on unchanged. With
// serverTLS it ends the clients' TLS and opens its own to the directory, so that the
// messages can be read.
type Counter struct {
	ln       net.Listener
	dial     func() (net.Conn, error)
	groupsDN string // lower case

	// Searches, Modifies, Adds and Renames count requests for entries outside groupsDN
	// (searches for any); AddsOK the adds the directory answered with success.
	Searches, Modifies, Adds, AddsOK, Renames atomic.Int64
	// GroupAdds and GroupModifies count requests for entries below groupsDN, and
	// MemberValues the member values those modifies add.
	GroupAdds, GroupModifies, MemberValues atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
}

// Start listens on loopback and passes connections on to upstream (host:port), over TLS
// when upstreamTLS is set; serverTLS, when set, ends the clients' TLS.
func Start(upstream string, upstreamTLS *tls.Config, serverTLS *tls.Config, groupsDN string) (*Counter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if serverTLS != nil {
		ln = tls.NewListener(ln, serverTLS)
	}
	c := &Counter{ln: ln, groupsDN: strings.ToLower(groupsDN), dial: func() (net.Conn, error) {
		if upstreamTLS != nil {
			return tls.Dial("tcp", upstream, upstreamTLS)
		}
		return net.Dial("tcp", upstream)
	}}
	go c.serve()
	return c, nil
}

// Addr is the proxy's host:port.
func (c *Counter) Addr() string { return c.ln.Addr().String() }

func (c *Counter) serve() {
	for {
		client, err := c.ln.Accept()
		if err != nil {
			return
		}
		server, err := c.dial()
		if err != nil {
			client.Close()
			continue
		}
		c.mu.Lock()
		c.conns = append(c.conns, client, server)
		c.mu.Unlock()
		// The ids of account adds in flight, to count the successful ones.
		var adds sync.Map
		go c.pipe(client, server, func(p *ber.Packet) { c.request(p, &adds) })
		go c.pipe(server, client, func(p *ber.Packet) { c.response(p, &adds) })
	}
}

// pipe copies whole LDAP messages from src to dst, showing each to see.
func (c *Counter) pipe(src, dst net.Conn, see func(*ber.Packet)) {
	defer src.Close()
	defer dst.Close()
	var raw bytes.Buffer
	r := io.TeeReader(src, &raw)
	for {
		p, err := ber.ReadPacket(r)
		if err != nil {
			return
		}
		see(p)
		if _, err := dst.Write(raw.Bytes()); err != nil {
			return
		}
		raw.Reset()
	}
}

func protocolOp(p *ber.Packet) *ber.Packet {
	if len(p.Children) < 2 || p.Children[1].ClassType != ber.ClassApplication {
		return nil
	}
	return p.Children[1]
}

func (c *Counter) request(p *ber.Packet, adds *sync.Map) {
	op := protocolOp(p)
	if op == nil {
		return
	}
	switch op.Tag {
	case opSearch:
		c.Searches.Add(1)
	case opAdd:
		if dn, _ := op.Children[0].Value.(string); c.inGroups(dn) {
			c.GroupAdds.Add(1)
			return
		}
		c.Adds.Add(1)
		adds.Store(p.Children[0].Value, true)
	case opModifyDN:
		c.Renames.Add(1)
	case opModify:
		if len(op.Children) < 2 {
			return
		}
		if dn, _ := op.Children[0].Value.(string); !c.inGroups(dn) {
			c.Modifies.Add(1)
			return
		}
		c.GroupModifies.Add(1)
		for _, change := range op.Children[1].Children {
			if len(change.Children) < 2 || len(change.Children[1].Children) < 2 {
				continue
			}
			operation, _ := change.Children[0].Value.(int64)
			attr, _ := change.Children[1].Children[0].Value.(string)
			if operation == 0 && strings.EqualFold(attr, "member") { // add
				for _, v := range change.Children[1].Children[1].Children {
					if s, _ := v.Value.(string); s != "" {
						c.MemberValues.Add(1)
					}
				}
			}
		}
	}
}

func (c *Counter) inGroups(dn string) bool {
	return c.groupsDN != "" && strings.HasSuffix(strings.ToLower(dn), c.groupsDN)
}

func (c *Counter) response(p *ber.Packet, adds *sync.Map) {
	op := protocolOp(p)
	if op == nil || op.Tag != opAddResponse || len(op.Children) == 0 {
		return
	}
	if _, account := adds.LoadAndDelete(p.Children[0].Value); !account {
		return
	}
	if code, _ := op.Children[0].Value.(int64); code == 0 {
		c.AddsOK.Add(1)
	}
}

// Reset zeroes the counts.
func (c *Counter) Reset() {
	for _, n := range []*atomic.Int64{&c.Searches, &c.Modifies, &c.Adds, &c.AddsOK, &c.Renames, &c.GroupAdds, &c.GroupModifies, &c.MemberValues} {
		n.Store(0)
	}
}

// Stop closes the listener and every connection.
func (c *Counter) Stop() {
	c.ln.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}
