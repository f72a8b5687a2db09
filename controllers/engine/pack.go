package engine

import (
	"encoding/json"

	"github.com/rosterhq/roster/connectors"
)

// observed is an account of the app as the engine keeps it. Attributes decoded from an
// app's answers are maps of maps, about 1.5 KiB an account; packed as JSON they take a
// third of that, so the account itself carries none: planning a User unpacks its one
// account, and what the account is found and named by is kept aside.
type observed struct {
	connectors.Account
	packed   []byte // the attributes, as JSON
	index    string // the account's entry in byKey, "" if it has no matching key
	userName string
}

// observe packs an account with all its attributes, as an app showed it.
func (e *Engine) observe(acc *connectors.Account) *observed {
	o := &observed{Account: connectors.Account{ID: acc.ID, Active: acc.Active, Version: acc.Version}, userName: acc.UserName()}
	if v := acc.KeyValue(e.cfg.MatchBy); v != "" {
		o.index = keyIndex(e.cfg.MatchBy, v)
	}
	data, err := json.Marshal(acc.Attributes)
	if err != nil {
		o.Attributes = acc.Attributes // attributes JSON cannot hold are kept as they are
	}
	o.packed = data
	return o
}

// unpack returns the account with all its attributes (nil for nil).
func (o *observed) unpack() *connectors.Account {
	if o == nil {
		return nil
	}
	full := o.Account
	if o.Attributes == nil {
		if err := json.Unmarshal(o.packed, &full.Attributes); err != nil {
			full.Attributes = nil
		}
	}
	return &full
}
