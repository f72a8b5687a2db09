package googleapi

import "testing"

// StartTest serves an account for one test: it stops with the test, and each departure
// from the discovery documents it saw fails the test.
func StartTest(t testing.TB, opts Options) *Server {
	t.Helper()
	srv, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		for _, p := range srv.Problems() {
			t.Errorf("Google's discovery document: %s", p)
		}
	})
	return srv
}

// Admin makes a change as an admin in the Admin console would (see Do), failing the
// test if Google refuses it.
func (s *Server) Admin(t testing.TB, method string, params map[string]string, body map[string]any) map[string]any {
	t.Helper()
	status, answer := s.Do(method, params, body)
	if status/100 != 2 {
		t.Fatalf("%s %v: %d %v", method, params, status, answer)
	}
	m, _ := answer.(map[string]any)
	return m
}
