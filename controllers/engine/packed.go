package engine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sync"
)

// An account's attributes are kept packed: each value JSON can hold is written as a
// tag and its bytes, and each attribute's name (the same dozen paths in every account
// of every app, some of them SCIM schema URNs seventy bytes long) as a number from one
// table the process shares. Unpacked, the attributes are what a JSON round trip of them
// gives: strings, booleans, float64 numbers, nil, []any and map[string]any.
const (
	tagNull byte = iota
	tagFalse
	tagTrue
	tagString
	tagNumber
	tagList
	tagObject
	tagJSON // any other Go value, as JSON
)

// attributeNames numbers the names of every engine's accounts' attributes. It holds
// 4,096 at most: beyond them (an app that names its attributes afresh in every account)
// a name is written out in full in each account.
var attributeNames = newNameTable(4096)

// nameTable numbers attribute names; a number, once given, names the same thing for
// the life of the table.
type nameTable struct {
	mu    sync.RWMutex
	ids   map[string]uint64
	names []string
	max   int
}

func newNameTable(max int) *nameTable { return &nameTable{ids: map[string]uint64{}, max: max} }

// id returns name's number, numbering it if the table has room.
func (t *nameTable) id(name string) (uint64, bool) {
	t.mu.RLock()
	id, ok := t.ids[name]
	t.mu.RUnlock()
	if ok {
		return id, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[name]; ok {
		return id, true
	}
	if len(t.names) >= t.max {
		return 0, false
	}
	id = uint64(len(t.names))
	t.names = append(t.names, name)
	t.ids[name] = id
	return id, true
}

// all returns the names numbered so far; numbers given later are past its end.
func (t *nameTable) all() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.names
}

// pack encodes attrs; the same attributes always give the same bytes.
func (t *nameTable) pack(attrs map[string]any) ([]byte, error) {
	return t.appendValue(nil, attrs)
}

func (t *nameTable) appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, tagNull), nil
	case bool:
		if v {
			return append(b, tagTrue), nil
		}
		return append(b, tagFalse), nil
	case string:
		return appendString(append(b, tagString), v), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errors.New("a number JSON cannot hold")
		}
		return binary.LittleEndian.AppendUint64(append(b, tagNumber), math.Float64bits(v)), nil
	case []any:
		b = binary.AppendUvarint(append(b, tagList), uint64(len(v)))
		for _, item := range v {
			var err error
			if b, err = t.appendValue(b, item); err != nil {
				return nil, err
			}
		}
		return b, nil
	case map[string]any:
		return t.appendObject(b, v)
	default:
		data, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return appendString(append(b, tagJSON), string(data)), nil
	}
}

func (t *nameTable) appendObject(b []byte, m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(append(b, tagObject), uint64(len(keys)))
	for _, k := range keys {
		if id, ok := t.id(k); ok {
			b = binary.AppendUvarint(b, id+1)
		} else {
			b = appendString(append(b, 0), k)
		}
		var err error
		if b, err = t.appendValue(b, m[k]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// unpack decodes what pack encoded.
func (t *nameTable) unpack(data []byte) (map[string]any, error) {
	r := unpacker{data: data, names: t.all()}
	v, err := r.value()
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok || len(r.data) != 0 {
		return nil, errPacked
	}
	return m, nil
}

var errPacked = errors.New("packed attributes are damaged")

type unpacker struct {
	data  []byte
	names []string
}

func (r *unpacker) value() (any, error) {
	if len(r.data) == 0 {
		return nil, errPacked
	}
	tag := r.data[0]
	r.data = r.data[1:]
	switch tag {
	case tagNull:
		return nil, nil
	case tagFalse, tagTrue:
		return tag == tagTrue, nil
	case tagString:
		return r.string()
	case tagNumber:
		if len(r.data) < 8 {
			return nil, errPacked
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(r.data))
		r.data = r.data[8:]
		return f, nil
	case tagList:
		return r.list()
	case tagObject:
		return r.object()
	case tagJSON:
		s, err := r.string()
		if err != nil {
			return nil, err
		}
		var v any
		return v, json.Unmarshal([]byte(s), &v)
	}
	return nil, errPacked
}

func (r *unpacker) list() ([]any, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	out := make([]any, n)
	for i := range out {
		if out[i], err = r.value(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *unpacker) object() (map[string]any, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, n)
	for range n {
		k, err := r.name()
		if err != nil {
			return nil, err
		}
		if out[k], err = r.value(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *unpacker) name() (string, error) {
	id, err := r.uvarint()
	switch {
	case err != nil:
		return "", err
	case id == 0:
		return r.string()
	case id > uint64(len(r.names)):
		return "", errPacked
	}
	return r.names[id-1], nil
}

// count reads the length of a list or object: at most one item a byte left.
func (r *unpacker) count() (int, error) {
	n, err := r.uvarint()
	if err != nil || n > uint64(len(r.data)) {
		return 0, errPacked
	}
	return int(n), nil
}

func (r *unpacker) string() (string, error) {
	n, err := r.uvarint()
	if err != nil || n > uint64(len(r.data)) {
		return "", errPacked
	}
	s := string(r.data[:n])
	r.data = r.data[n:]
	return s, nil
}

func (r *unpacker) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.data)
	if n <= 0 {
		return 0, errPacked
	}
	r.data = r.data[n:]
	return v, nil
}
