package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/rosterhq/roster/connectors"
)

const enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// scimAccount is an account as a SCIM app answers with it, flattened.
func scimAccount(i int) map[string]any {
	return map[string]any{
		"userName": fmt.Sprintf("ada.lovelace%05d@example.com", i), "externalId": fmt.Sprintf("ada-lovelace-%05d", i),
		"name.givenName": "Ada", "name.familyName": "Lovelace", "name.middleName": "", "displayName": "Ada Lovelace",
		"emails": []any{map[string]any{"value": fmt.Sprintf("ada.lovelace%05d@example.com", i), "type": "work", "primary": true}},
		"title":  "Engineer", "userType": "Employee", "roles": []any{},
		enterprise + ":department": "Engineering", enterprise + ":manager.value": "5f0c6b2e-8a4f-4b7e-9a51-3c2d1e0f9a8b",
	}
}

// jsonRoundTrip is what attributes were before packing kept them as JSON.
func jsonRoundTrip(t *testing.T, attrs map[string]any) map[string]any {
	t.Helper()
	data, err := json.Marshal(attrs)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPackedAttributesUnpackAsTheirJSONRoundTrip(t *testing.T) {
	cases := map[string]map[string]any{
		"a SCIM account": scimAccount(7),
		"every JSON type": {
			"s": "Zoë 👩‍💻 \x00 \"quoted\"", "t": true, "f": false, "n": nil, "pi": 3.14159, "neg": -1e300, "zero": 0.0,
			"list": []any{"a", 1.0, nil, []any{}, map[string]any{}}, "empty": map[string]any{},
			"nested": map[string]any{"deeper": map[string]any{"list": []any{map[string]any{"value": "x", "primary": true}}}},
		},
		"values only JSON names": {
			"int": 42, "int64": int64(-7), "number": json.Number("12.5"), "strings": []string{"cn=a", "cn=b"},
			"stringMap": map[string]string{"k": "v"}, "bytes": []byte("raw"),
		},
		"no attributes": {},
	}
	table := newNameTable(4096)
	for name, attrs := range cases {
		t.Run(name, func(t *testing.T) {
			packed, err := table.pack(attrs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := table.unpack(packed)
			if err != nil {
				t.Fatal(err)
			}
			if want := jsonRoundTrip(t, attrs); !reflect.DeepEqual(got, want) {
				t.Fatalf("unpacked\n%#v\nwant\n%#v", got, want)
			}
		})
	}
}

func TestTheSameAttributesPackToTheSameBytes(t *testing.T) {
	table := newNameTable(4096)
	first, err := table.pack(scimAccount(1))
	if err != nil {
		t.Fatal(err)
	}
	for range 20 { // a map is walked in a new order each time
		again, err := table.pack(scimAccount(1))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("packed twice: %x and %x", first, again)
		}
	}
	other, _ := table.pack(scimAccount(2))
	if bytes.Equal(first, other) {
		t.Fatal("two different accounts packed the same")
	}
}

func TestNamesBeyondTheTableAreWrittenInFull(t *testing.T) {
	table := newNameTable(3)
	attrs := map[string]any{"a": "1", "b": "2", "c": "3", "d": "4", "e": map[string]any{"f": "6"}}
	packed, err := table.pack(attrs)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(table.all()); n != 3 {
		t.Fatalf("the table holds %d names, want 3", n)
	}
	if !bytes.Contains(packed, []byte("\x00\x01d")) || !bytes.Contains(packed, []byte("\x00\x01f")) {
		t.Fatalf("the names past the table are not written in full: %q", packed)
	}
	got, err := table.unpack(packed)
	if err != nil || !reflect.DeepEqual(got, jsonRoundTrip(t, attrs)) {
		t.Fatalf("unpacked %v, %v", got, err)
	}
}

func TestAttributesJSONCannotHoldAreKeptUnpacked(t *testing.T) {
	for _, bad := range []any{math.NaN(), math.Inf(1), make(chan int), []any{"ok", math.NaN()}} {
		acc := &connectors.Account{ID: "1", Attributes: map[string]any{"userName": "ada", "bad": bad}}
		o := pack(acc, connectors.KeyUserName)
		if o.packed != nil || o.Attributes == nil {
			t.Fatalf("%v: packed %q, attributes %v", bad, o.packed, o.Attributes)
		}
		if got := o.unpack(); got.UserName() != "ada" {
			t.Fatalf("%v: unpacked %v", bad, got.Attributes)
		}
	}
}

func TestDamagedPackedAttributesUnpackAsAnError(t *testing.T) {
	table := newNameTable(4096)
	packed, err := table.pack(scimAccount(3))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(packed) {
		if got, err := table.unpack(packed[:n]); err == nil {
			t.Fatalf("the first %d of %d bytes unpacked as %v", n, len(packed), got)
		}
	}
	if _, err := table.unpack(append(packed, tagNull)); err == nil {
		t.Fatal("bytes past the attributes unpacked")
	}
	if _, err := newNameTable(4096).unpack(packed); err == nil {
		t.Fatal("names another table numbered unpacked")
	}
	huge := []byte{tagObject, 0xff, 0xff, 0xff, 0xff, 0x0f}
	if _, err := table.unpack(huge); err == nil {
		t.Fatal("an object longer than its bytes unpacked")
	}
}

// FuzzPackedAttributes packs whatever JSON object the fuzzer makes, and unpacks it as
// its JSON round trip; any bytes at all unpack as attributes or an error.
func FuzzPackedAttributes(f *testing.F) {
	seed, _ := json.Marshal(scimAccount(1))
	f.Add(seed)
	f.Add([]byte(`{"a":[1,{"b":null}],"c":true}`))
	table := newNameTable(64)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = table.unpack(data)
		var attrs map[string]any
		if json.Unmarshal(data, &attrs) != nil || attrs == nil {
			return
		}
		packed, err := table.pack(attrs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := table.unpack(packed)
		if err != nil || !reflect.DeepEqual(got, jsonRoundTrip(t, attrs)) {
			t.Fatalf("%s unpacked as %v, %v", data, got, err)
		}
	})
}

// BenchmarkPackedAccount packs and unpacks a SCIM account, beside the JSON it was
// kept as before, and reports the bytes each keeps.
func BenchmarkPackedAccount(b *testing.B) {
	attrs := scimAccount(1)
	b.Run("packed", func(b *testing.B) {
		table := newNameTable(4096)
		var size int
		for b.Loop() {
			packed, _ := table.pack(attrs)
			size = len(packed)
			if _, err := table.unpack(packed); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size), "kept-bytes")
	})
	b.Run("json", func(b *testing.B) {
		var size int
		for b.Loop() {
			data, _ := json.Marshal(attrs)
			size = len(data)
			var out map[string]any
			if err := json.Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size), "kept-bytes")
	})
}
