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
