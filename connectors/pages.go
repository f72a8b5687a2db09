package connectors

import (
	"context"
	"fmt"
)

// MaxPages and MaxListed bound one listing: an app that hands back the same cursor, or
// pages without end, stops the listing with an error instead of looping for ever.
const (
	MaxPages  = 100_000
	MaxListed = 2_000_000
)

// ListAll reads every page of a listing, starting from the cursor "". It fails on a
// cursor that comes back a second time and past MaxPages pages or MaxListed items.
func ListAll[T any](ctx context.Context, what string, page func(ctx context.Context, cursor string) ([]T, string, error)) ([]T, error) {
	var all []T
	seen := map[string]bool{"": true}
	cursor := ""
	for pages := 1; ; pages++ {
		items, next, err := page(ctx, cursor)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", what, err)
		}
		all = append(all, items...)
		switch {
		case next == "":
			return all, nil
		case seen[next]:
			return nil, &PermanentError{Message: fmt.Sprintf("listing %s: the app handed back the page cursor %q a second time, after %d pages; stopped to avoid looping for ever", what, truncate(next, 64), pages)}
		case pages >= MaxPages || len(all) >= MaxListed:
			return nil, &PermanentError{Message: fmt.Sprintf("listing %s: stopped after %d pages and %d items, the most one listing may take", what, pages, len(all))}
		}
		seen[next] = true
		cursor = next
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
