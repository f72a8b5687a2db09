package graphapi

import "testing"

// StartTest serves a tenant for one test: it stops with the test, and each departure
// from Microsoft's documentation it saw fails the test.
func StartTest(t testing.TB, opts Options) *Server {
	t.Helper()
	srv, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		for _, p := range srv.Problems() {
			t.Errorf("Microsoft Graph's documentation: %s", p)
		}
	})
	return srv
}

// Admin makes a change as an admin in the Entra admin center would (see Do), failing
// the test if Graph refuses it.
func (s *Server) Admin(t testing.TB, method, path, body string) map[string]any {
	t.Helper()
	status, answer := s.Do(method, path, body)
	if status/100 != 2 {
		t.Fatalf("%s %s: %d %v", method, path, status, answer)
	}
	m, _ := answer.(map[string]any)
	return m
}
