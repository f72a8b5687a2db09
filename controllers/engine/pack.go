package engine

import (
	"encoding/json"

	"github.com/rosterhq/roster/connectors"
)

// An engine keeps every account of its app in memory. Attributes decoded from an app's
// answers are maps of maps, about 1.5 KiB an account; packed as JSON they take a third
// of that. The account the engine keeps holds no attributes (what it is found and
// named by is in accountKeys); planning a User unpacks its one account.

// accountKeys are what an account is found by (its matching key in the index) and
// named by in status.
type accountKeys struct{ index, userName string }

// packLocked records acc's attributes in packed and returns the account as the engine
// keeps it.
func (e *Engine) packLocked(packed map[*connectors.Account][]byte, acc *connectors.Account) *connectors.Account {
	data, err := json.Marshal(acc.Attributes)
	if err != nil {
		return acc // attributes JSON cannot hold are kept as they are
	}
	kept := &connectors.Account{ID: acc.ID, Active: acc.Active, Version: acc.Version}
	packed[kept] = data
	return kept
}

// unpackLocked returns a kept account with all its attributes, as the app last showed
// them (nil for nil).
func (e *Engine) unpackLocked(acc *connectors.Account) *connectors.Account {
	data, ok := e.packed[acc]
	if acc == nil || !ok {
		return acc
	}
	var attrs map[string]any
	if err := json.Unmarshal(data, &attrs); err != nil {
		return acc
	}
	full := *acc
	full.Attributes = attrs
	return &full
}
