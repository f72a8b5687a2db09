package ldap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rosterhq/roster/connectors"
)

// A paged search's cookie (RFC 2696) is good only on the connection that started the
// search, so a listing keeps its own connection from the first page to the last, and
// the cursor handed to the engine names the listing and its cookie.

// maxListings bounds the listings kept open at once; starting one more closes the
// oldest, which a caller that stopped asking for pages left behind.
const maxListings = 4

type listing struct {
	conn    *goldap.Conn
	started time.Time
}

type listings struct {
	mu   sync.Mutex
	open map[string]*listing
}

func (l *listings) start(conn *goldap.Conn) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open == nil {
		l.open = map[string]*listing{}
	}
	for len(l.open) >= maxListings {
		oldest := ""
		for k, v := range l.open {
			if oldest == "" || v.started.Before(l.open[oldest].started) {
				oldest = k
			}
		}
		l.open[oldest].conn.Close()
		delete(l.open, oldest)
	}
	l.open[token] = &listing{conn: conn, started: time.Now()}
	return token
}

func (l *listings) get(token string) *goldap.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if li := l.open[token]; li != nil {
		return li.conn
	}
	return nil
}

func (l *listings) end(token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if li := l.open[token]; li != nil {
		li.conn.Close()
		delete(l.open, token)
	}
}

// page runs one page of a paged search below base; cursor "" starts a listing. It
// returns the entries, each already translated by visit on the listing's connection,
// and the cursor of the next page ("" after the last).
func (t *Target) page(ctx context.Context, cursor, base, filter string, attrs []string, visit func(*goldap.Conn, *goldap.Entry)) (string, error) {
	token, cookieHex, _ := strings.Cut(cursor, ":")
	var conn *goldap.Conn
	if cursor == "" {
		c, err := t.dialer.bound(ctx)
		if err != nil {
			return "", err
		}
		conn, token = c, t.listings.start(c)
	} else if conn = t.listings.get(token); conn == nil {
		return "", &connectors.TransientError{Err: fmt.Errorf("the listing this page belongs to was closed; the listing starts again")}
	}
	cookie, err := hex.DecodeString(cookieHex)
	if err != nil {
		t.listings.end(token)
		return "", &connectors.PermanentError{Message: "not a cursor this target gave"}
	}
	paging := goldap.NewControlPaging(t.pageSize)
	paging.SetCookie(cookie)
	req := goldap.NewSearchRequest(base, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, filter, attrs, []goldap.Control{paging})
	stop := context.AfterFunc(ctx, func() { t.listings.end(token) })
	res, err := conn.Search(req)
	stop()
	if err != nil {
		t.listings.end(token)
		return "", classify("listing "+base, err)
	}
	for _, e := range res.Entries {
		visit(conn, e)
	}
	next, _ := goldap.FindControl(res.Controls, goldap.ControlTypePaging).(*goldap.ControlPaging)
	if next == nil || len(next.Cookie) == 0 {
		t.listings.end(token)
		return "", nil
	}
	return token + ":" + hex.EncodeToString(next.Cookie), nil
}

// ListAccounts returns one page of the accounts below usersDN.
func (t *Target) ListAccounts(ctx context.Context, cursor string) (connectors.AccountPage, error) {
	var page connectors.AccountPage
	next, err := t.page(ctx, cursor, t.usersDN, t.shape.userFilter, t.attrs, func(conn *goldap.Conn, e *goldap.Entry) {
		page.Accounts = append(page.Accounts, t.remember(conn, e))
	})
	page.Next = next
	return page, err
}
