package main

import (
	"errors"
	"testing"
)

func TestSoftMemoryLimit(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(path string) ([]byte, error) {
			if v, ok := m[path]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("no such file")
		}
	}
	cases := []struct {
		name       string
		gomemlimit string
		files      map[string]string
		want       int64
		ok         bool
	}{
		{"cgroup v2 limit", "", map[string]string{"/sys/fs/cgroup/memory.max": "536870912\n"}, 483183819, true},
		{"cgroup v1 limit", "", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "1073741824\n"}, 966367638, true},
		{"no limit (v2)", "", map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, 0, false},
		{"no limit (v1)", "", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		{"not in a container", "", nil, 0, false},
		{"GOMEMLIMIT wins", "400MiB", map[string]string{"/sys/fs/cgroup/memory.max": "536870912\n"}, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := softMemoryLimit(c.gomemlimit, files(c.files))
			if got != c.want || ok != c.ok {
				t.Fatalf("softMemoryLimit = %d, %v; want %d, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestAutoShardsFlags(t *testing.T) {
	for _, c := range []struct {
		opts options
		ok   bool
	}{
		{options{}, true},
		{options{autoShards: 4, leaderElect: true}, true},
		{options{autoShards: 4}, false},                                 // no leader for the main shard's work
		{options{autoShards: 4, leaderElect: true, shard: "eu"}, false}, // one or the other
		{options{autoShards: -1, leaderElect: true}, false},
	} {
		if err := checkAutoShards(c.opts); (err == nil) != c.ok {
			t.Errorf("checkAutoShards(%+v) = %v, want ok=%v", c.opts, err, c.ok)
		}
	}
	inPod := func(string) ([]byte, error) { return []byte("roster-system\n"), nil }
	if got := leaseNamespace("", inPod); got != "roster-system" {
		t.Errorf("the leases' namespace in a pod is %q, want the operator's", got)
	}
	if got := leaseNamespace("leases", inPod); got != "leases" {
		t.Errorf("the leases' namespace with the flag is %q", got)
	}
}
