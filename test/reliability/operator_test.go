package reliability

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rosterhq/roster/test/testenv"
)

// operator is one Roster process, the binary `make build` produces, run with its flags.
type operator struct {
	name  string
	cmd   *exec.Cmd
	probe string // health probe address
	log   *logFile
	done  chan struct{}
	err   error // how the process ended, once done is closed
}

// logFile keeps a process's output for a failing test to show.
type logFile struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logFile) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(l.buf.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// keep writes the whole log into the test's artifact directory (kept with go test
// -artifacts) and returns the file's path.
func (l *logFile) keep(t *testing.T, name string) string {
	f, err := os.CreateTemp(t.ArtifactDir(), "operator-"+name+"-*.log")
	if err != nil {
		return err.Error()
	}
	defer func() { _ = f.Close() }()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := f.Write(l.buf.Bytes()); err != nil {
		return err.Error()
	}
	return f.Name()
}

// startOperator starts the operator binary against the control plane, with leader
// election in the default namespace and the lease timing short enough for tests.
func startOperator(t *testing.T, name string, kubeconfig string, extra ...string) *operator {
	t.Helper()
	probe := freeAddr(t)
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect", "--leader-election-namespace=default",
		"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms",
		"--metrics-bind-address=0", "--health-probe-bind-address=" + probe,
		"--scim-bind-address=0", "--zap-log-level=info",
	}, extra...)
	if err := operatorInputs(); err != nil {
		t.Fatal(err)
	}
	op := &operator{name: name, probe: probe, log: &logFile{}, done: make(chan struct{})}
	op.cmd = exec.Command(suite.binary, args...)
	op.cmd.Stdout, op.cmd.Stderr = op.log, op.log
	op.cmd.Env = append(os.Environ(), "GOMAXPROCS=2", "POD_NAME="+name)
	if err := op.cmd.Start(); err != nil {
		t.Fatalf("starting operator %s: %v", name, err)
	}
	go func() {
		op.err = op.cmd.Wait()
		close(op.done)
	}()
	t.Cleanup(func() {
		op.kill()
		if t.Failed() {
			t.Logf("operator %s, last lines:\n%s\nwhole log: %s", name, op.log.tail(40), op.log.keep(t, name))
		}
	})
	waitUntil(t, 60*time.Second, "operator "+name+" is healthy", func() (bool, string) {
		resp, err := http.Get("http://" + probe + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return op
}

// kill ends the process with SIGKILL: no goodbye, no lease released, requests cut.
func (o *operator) kill() {
	if o.cmd.Process != nil {
		_ = o.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-o.done
}

// terminate sends SIGTERM, as Kubernetes does, and returns how the process ended and
// how long it took.
func (o *operator) terminate(grace time.Duration) (exitCode int, took time.Duration, err error) {
	start := time.Now()
	if err := o.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return -1, 0, err
	}
	select {
	case <-o.done:
	case <-time.After(grace):
		o.kill()
		return -1, time.Since(start), fmt.Errorf("still running after %s", grace)
	}
	return o.cmd.ProcessState.ExitCode(), time.Since(start), nil
}

// operatorInputs records what the operator binary is built from as the tests' inputs.
// It runs in a test, not in TestMain where the binary is built: Go's test cache sees
// only what is read once m.Run has begun.
var operatorInputs = sync.OnceValue(func() error { return testenv.DependOnGoBuild(repoRoot()) })

// buildOperator builds the operator as `make build` does, once per run.
func buildOperator(dir string) (string, error) {
	out := filepath.Join(dir, "roster")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = repoRoot()
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the operator: %v\n%s", err, msg)
	}
	return out, nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// waitUntil polls cond until it holds or within passes; the last detail is reported.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	detail := ""
	for {
		var ok bool
		if ok, detail = cond(); ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %s (last: %s)", what, within, detail)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func itoa(n int) string { return fmt.Sprint(n) }
