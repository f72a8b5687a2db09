package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
)

const mib = 1 << 20

// memoryAfterInitialSync reports the process's resident memory once the initial sync
// has converged (the operator, with every object in its caches and every account in
// its engines), and the live heap after a collection.
func (b *bench) memoryAfterInitialSync() {
	rss := procStatus("VmRSS")
	var before, ms runtime.MemStats
	runtime.ReadMemStats(&before)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.report.add(atMost("memory", "operator RSS after the initial sync", float64(rss)/mib, 250, "MiB", map[string]float64{
		"heapInUseMiB": float64(ms.HeapInuse) / mib, "heapLiveMiB": float64(ms.HeapAlloc) / mib,
		"goroutines": float64(runtime.NumGoroutine()),
		// where the resident memory was before the collection: the heap's objects (live
		// and garbage), its spans' free room, freed pages not yet given back, the rest.
		"heapAllocBeforeGCMiB": float64(before.HeapAlloc) / mib, "heapInUseBeforeGCMiB": float64(before.HeapInuse) / mib,
		"heapRetainedIdleMiB": float64(before.HeapIdle-before.HeapReleased) / mib,
		"stackMiB":            float64(before.StackInuse) / mib, "runtimeOtherMiB": float64(before.Sys-before.HeapSys-before.StackSys) / mib,
		"nextGCMiB": float64(before.NextGC) / mib,
	}))
	path := filepath.Join(b.opts.ProfileDir, "initial-sync.heap.pprof")
	if f, err := os.Create(path); err == nil {
		_ = pprof.WriteHeapProfile(f)
		f.Close()
		b.addProfile("initial-sync", "heap", path)
	}
}

// memoryAtEnd reports the peak resident memory of the whole run.
func (b *bench) memoryAtEnd() {
	peak := procStatus("VmHWM")
	b.report.add(Result{Scenario: "memory", Figure: "operator peak RSS over the run", Value: round(float64(peak) / mib), Unit: "MiB",
		Target: "(reported)", Met: true})
}

// procStatus reads a /proc/self/status field in bytes.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// addProfile puts the top functions of a profile, as go tool pprof lists them, in the
// report.
func (b *bench) addProfile(scenario, kind, path string) {
	args := []string{"tool", "pprof", "-top", "-nodecount=15"}
	if kind == "heap" {
		args = append(args, "-sample_index=inuse_space")
	}
	out, err := exec.Command("go", append(args, path)...).Output()
	p := Profile{Scenario: scenario, Kind: kind, File: path}
	if err != nil {
		p.Top = []string{fmt.Sprintf("go tool pprof failed: %v", err)}
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, line := range lines {
		if strings.Contains(line, "flat%") { // the header; the rows follow
			p.Top = lines[i:]
			break
		}
	}
	b.report.Profiles = append(b.report.Profiles, p)
}
