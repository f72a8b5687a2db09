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

// LookupOrCreate looks the account up by key, and creates it only when the app does not
// hold it. It is for a create whose earlier attempt may have reached the app although
// its answer was lost (a timeout, a reset connection, a 5xx, a cut body): not every app
// refuses a second account with a taken key, so creating again could make a duplicate.
func LookupOrCreate(ctx context.Context, t Target, desired Account, kind KeyKind) (Account, bool, error) {
	found, err := t.Lookup(ctx, Key{Kind: kind, Value: desired.KeyValue(kind)})
	switch {
	case err == nil:
		return found, true, nil
	case !errors.Is(err, ErrNotFound):
		return Account{}, false, err
	}
	return CreateOrAdopt(ctx, t, desired, kind)
}

// OutcomeUnknown reports whether a write that failed with err may still have been done
// by the app: every failure but a refusal the app answered (a permanent 4xx, a request
// to slow down, a conflict).
func OutcomeUnknown(err error) bool {
	if err == nil || IsPermanent(err) || errors.Is(err, ErrConflict) {
		return false
	}
	_, rateLimited := RetryAfter(err)
	return !rateLimited
}
