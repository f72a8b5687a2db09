package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is the unit of CPU times in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// cpuSeconds is the CPU time used so far by this process (the operator, with the
// bench's own small share) and by each kind of process it started: the API server,
// etcd, the apps. On a machine of a few cores they share, it tells which of them a
// scenario waited on.
type cpuSeconds map[string]float64

func readCPU() cpuSeconds {
	self := os.Getpid()
	selfName, out := "", cpuSeconds{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		name, ppid, used, ok := procCPU(path)
		switch {
		case !ok:
		case pid == self:
			selfName = name
			out["operator"] += used
		case ppid == self:
			out[name] += used
		}
	}
	if n, ok := out[selfName]; ok && selfName != "" { // the apps: this binary, started again
		out["apps"] += n
		delete(out, selfName)
	}
	return out
}

// procCPU reads a process's name, parent and CPU seconds (user and system) from its
// stat file.
func procCPU(path string) (name string, ppid int, seconds float64, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", 0, 0, false
	}
	s := string(data)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", 0, 0, false
	}
	fields := strings.Fields(s[closing+1:]) // from the state, the stat's third field
	if len(fields) < 13 {
		return "", 0, 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return s[open+1 : closing], ppid, (utime + stime) / clockTicks, true
}

// since is the CPU time used between before and c.
func (c cpuSeconds) since(before cpuSeconds) cpuSeconds {
	out := cpuSeconds{}
	for name, n := range c {
		out[name] = n - before[name]
	}
	return out
}

// addTo puts the CPU seconds into details, one key a process.
func (c cpuSeconds) addTo(details map[string]float64, prefix string) {
	for name, n := range c {
		details[prefix+name] = round(n)
	}
}
