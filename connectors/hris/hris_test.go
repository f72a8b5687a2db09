package hris

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

type refs map[string]string

func (r refs) SecretValue(_ context.Context, name, key string) ([]byte, error) {
	if v, ok := r["secret/"+name+"/"+key]; ok {
		return []byte(v), nil
	}
	return nil, connectors.ErrSecretNotFound
}

func (r refs) ConfigMapValue(_ context.Context, name, key string) ([]byte, error) {
	if v, ok := r["configmap/"+name+"/"+key]; ok {
		return []byte(v), nil
	}
	return nil, connectors.ErrSecretNotFound
}

func snapshot(t *testing.T, spec identityv1alpha1.HRISSource, r refs) (connectors.Snapshot, error) {
	t.Helper()
	src, err := NewFactory()(context.Background(), &identityv1alpha1.DirectorySync{Spec: identityv1alpha1.DirectorySyncSpec{HRIS: &spec}}, r)
	if err != nil {
		return connectors.Snapshot{}, err
	}
	return src.Snapshot(context.Background())
}

const people = `id,firstName,lastName,email,department,hireDate,terminationDate,groups
E1,Ada,Lovelace,ada@example.com,eng,2026-01-05,,eng;oncall
E2,Grace,Hopper,grace@example.com,eng,2026-02-01,2027-06-30,eng
`

func TestCSVFromAConfigMap(t *testing.T) {
	snap, err := snapshot(t, identityv1alpha1.HRISSource{Format: "CSV", ConfigMapRef: &identityv1alpha1.ConfigMapKeySelector{Name: "hr", Key: "people.csv"}},
		refs{"configmap/hr/people.csv": people})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Records) != 2 || snap.Records[0].ID != "E1" || snap.Records[1].Attributes["terminationDate"] != "2027-06-30" {
		t.Fatalf("records = %+v", snap.Records)
	}
	if len(snap.Groups) != 2 || snap.Groups[0].Name != "eng" || len(snap.Groups[0].Members) != 2 || len(snap.Groups[1].Members) != 1 {
		t.Fatalf("groups = %+v", snap.Groups)
	}
}

func TestJSONOverHTTPSWithAnAuthHeaderFromASecret(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer hr-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"workers": [{"employeeId": "W1", "email": "ada@example.com"}]}`))
	}))
	defer srv.Close()
	spec := identityv1alpha1.HRISSource{Format: "JSON", URL: srv.URL, IDField: "employeeId",
		Headers: []identityv1alpha1.HTTPHeader{{Name: "Authorization", ValueFrom: &identityv1alpha1.SecretKeySelector{Name: "hr", Key: "auth"}}}}
	// httptest's certificate is signed by a CA the machine does not trust.
	_, err := snapshot(t, spec, refs{"secret/hr/auth": "Bearer hr-token"})
	if err == nil || !connectors.IsPermanent(err) {
		t.Fatalf("an untrusted certificate = %v, want a permanent error", err)
	}
	plain := httptest.NewServer(srv.Config.Handler)
	defer plain.Close()
	spec.URL = plain.URL
	snap, err := snapshot(t, spec, refs{"secret/hr/auth": "Bearer hr-token"})
	if err != nil || len(snap.Records) != 1 || snap.Records[0].ID != "W1" {
		t.Fatalf("snapshot = %+v, %v", snap, err)
	}
	_, err = snapshot(t, spec, refs{"secret/hr/auth": "Bearer wrong"})
	if !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatalf("a refused token = %v, want ErrUnauthorized", err)
	}
}

func TestRowsWithoutAnIDAreRefused(t *testing.T) {
	_, err := snapshot(t, identityv1alpha1.HRISSource{Format: "CSV", SecretRef: &identityv1alpha1.SecretKeySelector{Name: "hr", Key: "csv"}},
		refs{"secret/hr/csv": "name\nada\n"})
	if err == nil || !connectors.IsPermanent(err) {
		t.Fatalf("got %v, want a permanent error naming the id field", err)
	}
}

// TestAnExportOverTheLimitFailsInsteadOfBeingCut: an export cut at the limit would look
// like a complete, smaller directory, and everyone after the cut would be suspended.
func TestAnExportOverTheLimitFailsInsteadOfBeingCut(t *testing.T) {
	row := bytes.Repeat([]byte("E9,Someone,Else,someone@example.com,eng,2026-01-05,,eng\n"), 10000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("id,firstName,lastName,email,department,hireDate,terminationDate,groups\n"))
		for written := 0; written <= MaxExportBytes; written += len(row) {
			if _, err := w.Write(row); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	_, err := snapshot(t, identityv1alpha1.HRISSource{Format: "CSV", URL: srv.URL}, refs{})
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("an export over %d bytes = %v, want a permanent error saying it is too large", MaxExportBytes, err)
	}
}
