package engine

import (
	"context"
	"time"

	"github.com/rosterhq/roster/connectors"
)

// connectAndList validates the connection, unless it is up and unchanged since it was
// validated, and lists every account and group, page by page, then marks every User for
// planning. Roster's own writes made while the listing ran are kept over what the
// listing saw.
func (e *Engine) connectAndList(ctx context.Context, cfg Config) error {
	e.mu.Lock()
	connected, caps := e.synced && e.health == HealthReady, e.caps
	e.mu.Unlock()
	if !connected {
		var err error
		if caps, err = cfg.Target.Validate(ctx); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.caps = caps
	matchBy := e.cfg.MatchBy
	if !e.synced {
		e.health = HealthSyncing
	}
	e.app.beginListing()
	e.appChanged = true
	began := e.now()
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.app.endListing()
		e.mu.Unlock()
	}()

	accounts, err := listAccounts(ctx, cfg.Target, matchBy)
	if err != nil {
		return err
	}
	var groups []connectors.Group
	if gt, ok := cfg.Target.(connectors.GroupTarget); ok && caps.Groups {
		if groups, err = listGroups(ctx, gt); err != nil {
			return err
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if cfg.Target != e.cfg.Target {
		return nil // reconfigured while listing: the next sync is already asked for
	}
	e.app.replace(accounts, groups, func(lower string) bool { return e.pendingGroups[lower] != nil })
	if matchBy != e.cfg.MatchBy {
		e.app.rekey(e.cfg.MatchBy)
	}
	if !connected {
		clear(e.settled) // a new connection: every User is planned afresh
	}
	e.synced, e.health, e.err, e.failStreak, e.quarantine = true, HealthReady, nil, 0, time.Time{}
	e.lastFullSync, e.listedFrom = e.now(), began
	e.checkUnmanaged = true
	e.markAllLocked()
	e.appChanged = true
	return nil
}

// listAccounts packs each page as it comes: a listing of every app at once (a resync
// after a restart) holds the accounts as the engines keep them, not every page as the
// connector decoded it.
func listAccounts(ctx context.Context, t connectors.Target, matchBy connectors.KeyKind) ([]*observed, error) {
	return connectors.ListAll(ctx, "accounts", func(ctx context.Context, cursor string) ([]*observed, string, error) {
		page, err := t.ListAccounts(ctx, cursor)
		packed := make([]*observed, len(page.Accounts))
		for i := range page.Accounts {
			packed[i] = pack(&page.Accounts[i], matchBy)
		}
		return packed, page.Next, err
	})
}

func listGroups(ctx context.Context, t connectors.GroupTarget) ([]connectors.Group, error) {
	return connectors.ListAll(ctx, "groups", func(ctx context.Context, cursor string) ([]connectors.Group, string, error) {
		page, err := t.ListGroups(ctx, cursor)
		return page.Groups, page.Next, err
	})
}
