package connectors

import (
	"context"
	"errors"
	"fmt"
)

// CreateOrAdopt creates desired, or, when the app already holds an account with the
// same key (a create that went through before a crash, or one made by someone else),
// looks that account up and returns it with adopted set. It never creates a duplicate.
func CreateOrAdopt(ctx context.Context, t Target, desired Account, kind KeyKind) (Account, bool, error) {
	created, err := t.Create(ctx, desired)
	if err == nil {
		return created, false, nil
	}
	if !errors.Is(err, ErrConflict) {
		return Account{}, false, err
	}
	key := Key{Kind: kind, Value: desired.KeyValue(kind)}
	found, lookupErr := t.Lookup(ctx, key)
	if lookupErr == nil {
		return found, true, nil
	}
	if kind != KeyUserName && errors.Is(lookupErr, ErrNotFound) {
		// The conflict is on userName, which every app keeps unique.
		if found, err := t.Lookup(ctx, Key{Kind: KeyUserName, Value: desired.UserName()}); err == nil {
			return found, true, nil
		}
	}
	return Account{}, false, fmt.Errorf("the app reports %s exists but it cannot be found to adopt: %w", key.Value, lookupErr)
}
