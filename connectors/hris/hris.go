// Package hris reads people from an HR system's export: CSV (a header row, then one
// person per row) or JSON (an array of objects), from a ConfigMap, a Secret or an HTTPS
// URL. Each row is a record whose fields a DirectorySync maps to a User.
package hris

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
)

// groupsField, when present, lists a person's groups, separated by ";" in CSV.
const groupsField = "groups"

// MaxExportBytes bounds an export read over HTTP; a larger one fails the sync rather
// than being taken, cut short, as the whole directory.
const MaxExportBytes = 64 << 20

// Source reads one export.
type Source struct {
	spec    identityv1alpha1.HRISSource
	idField string
	read    func(ctx context.Context) ([]byte, error)
}

var _ connectors.Source = (*Source)(nil)

// NewFactory returns the SourceFactory for DirectorySyncs with an hris block.
func NewFactory() connectors.SourceFactory {
	return func(ctx context.Context, sync *identityv1alpha1.DirectorySync, secrets connectors.SecretReader) (connectors.Source, error) {
		spec := sync.Spec.HRIS
		if spec == nil {
			return nil, &connectors.PermanentError{Message: "the DirectorySync has no hris block"}
		}
		s := &Source{spec: *spec, idField: spec.IDField}
		if s.idField == "" {
			s.idField = "id"
		}
		switch {
		case spec.ConfigMapRef != nil:
			configMaps, ok := secrets.(connectors.ConfigMapReader)
			if !ok {
				return nil, &connectors.PermanentError{Message: "ConfigMaps cannot be read here"}
			}
			ref := spec.ConfigMapRef
			s.read = func(ctx context.Context) ([]byte, error) { return configMaps.ConfigMapValue(ctx, ref.Name, ref.Key) }
		case spec.SecretRef != nil:
			ref := spec.SecretRef
			s.read = func(ctx context.Context) ([]byte, error) { return secrets.SecretValue(ctx, ref.Name, ref.Key) }
		case spec.URL != "":
			read, err := httpReader(ctx, sync.Namespace+"/"+sync.Name, spec, secrets)
			if err != nil {
				return nil, err
			}
			s.read = read
		default:
			return nil, &connectors.PermanentError{Message: "the hris block names no export"}
		}
		return s, nil
	}
}

func httpReader(ctx context.Context, app string, spec *identityv1alpha1.HRISSource, secrets connectors.SecretReader) (func(context.Context) ([]byte, error), error) {
	// One retry: an export is read once an interval, and a server that hangs should be
	// reported within a minute (the syncer tries the next sync on its own schedule),
	// not after five attempts of 30 seconds.
	opts := httpx.Options{App: app, RequestsPerSecond: 1, MaxConcurrency: 1, MaxBodyBytes: MaxExportBytes, MaxAttempts: 2}
	if err := httpx.FromSpec(ctx, &opts, spec.Headers, spec.TLS, secrets); err != nil {
		return nil, err
	}
	client, err := httpx.New(opts)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) ([]byte, error) {
		resp, err := client.Do(ctx, http.MethodGet, spec.URL, nil, nil)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden:
			return nil, &connectors.PermanentError{Status: resp.Status, Message: "the export refused the credentials", Err: connectors.ErrUnauthorized}
		case resp.Status >= 300:
			return nil, &connectors.PermanentError{Status: resp.Status, Message: "fetching the export: " + http.StatusText(resp.Status)}
		}
		return resp.Body, nil
	}, nil
}

// Validate reads and parses the export.
func (s *Source) Validate(ctx context.Context) error {
	_, err := s.Snapshot(ctx)
	return err
}

// Snapshot reads the export. Groups named in a "groups" field become groups.
func (s *Source) Snapshot(ctx context.Context) (connectors.Snapshot, error) {
	data, err := s.read(ctx)
	if err != nil {
		return connectors.Snapshot{}, err
	}
	rows, err := parse(s.spec.Format, data)
	if err != nil {
		return connectors.Snapshot{}, &connectors.PermanentError{Message: "the export cannot be read: " + err.Error()}
	}
	var snap connectors.Snapshot
	groups := map[string]*connectors.SourceGroup{}
	for i, row := range rows {
		id := fmt.Sprint(row[s.idField])
		if row[s.idField] == nil || id == "" {
			return connectors.Snapshot{}, &connectors.PermanentError{Message: fmt.Sprintf("row %d has no %q (spec.hris.idField)", i+1, s.idField)}
		}
		r := connectors.Record{ID: id, Attributes: row}
		for _, name := range groupNames(row[groupsField]) {
			g := groups[name]
			if g == nil {
				g = &connectors.SourceGroup{ID: name, Name: name}
				groups[name] = g
			}
			g.Members = append(g.Members, id)
		}
		delete(row, groupsField) // the DirectorySync fills record.groups, nested groups expanded
		snap.Records = append(snap.Records, r)
	}
	for _, g := range groups {
		snap.Groups = append(snap.Groups, *g)
	}
	slices.SortFunc(snap.Groups, func(a, b connectors.SourceGroup) int { return strings.Compare(a.ID, b.ID) })
	return snap, nil
}

func parse(format identityv1alpha1.HRISFormat, data []byte) ([]map[string]any, error) {
	if format == "JSON" {
		return parseJSON(data)
	}
	return parseCSV(data)
}

func parseCSV(data []byte) ([]map[string]any, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff"))))
	r.TrimLeadingSpace = true
	rows, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no header row")
	}
	header := rows[0]
	out := make([]map[string]any, 0, len(rows)-1)
	for _, row := range rows[1:] {
		m := make(map[string]any, len(header))
		for i, col := range header {
			if i < len(row) {
				m[strings.TrimSpace(col)] = strings.TrimSpace(row[i])
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// parseJSON reads an array of objects, or an object holding one.
func parseJSON(data []byte) ([]map[string]any, error) {
	var rows []map[string]any
	if err := json.Unmarshal(data, &rows); err == nil {
		return rows, nil
	}
	var wrapper map[string]json.RawMessage
	if err := json.Unmarshal(data, &wrapper); err != nil {
		return nil, err
	}
	for _, v := range wrapper {
		if err := json.Unmarshal(v, &rows); err == nil {
			return rows, nil
		}
	}
	return nil, fmt.Errorf("no array of people found")
}

func groupNames(v any) []string {
	var names []string
	switch t := v.(type) {
	case string:
		for _, n := range strings.Split(t, ";") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	case []any:
		for _, n := range t {
			if s, ok := n.(string); ok && s != "" {
				names = append(names, s)
			}
		}
	}
	return names
}
