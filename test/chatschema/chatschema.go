// Package chatschema checks the messages Roster sends to Slack and Microsoft Teams
// against what the vendors publish: Slack's Block Kit types (@slack/types, checked by
// the TypeScript compiler) and Microsoft's Adaptive Cards library (adaptivecards), both
// from npm, installed into the user's cache on first use.
package chatschema

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/rosterhq/roster/test/npm"
)

// Check returns the problems of messages ("slack" or "teams"), one per entry, each
// starting with the index of its message; none when all pass.
func Check(kind string, messages []json.RawMessage) ([]string, error) {
	_, self, _, _ := runtime.Caller(0)
	dir, err := npm.Install(filepath.Dir(self), "chat-schemas", []string{"check.cjs"}, "node_modules/typescript/package.json")
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node is not installed: run make test-tools, which installs Node.js")
	}
	work, err := os.MkdirTemp("", "chat-messages-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	data, err := json.Marshal(messages)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(work, "messages.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return nil, err
	}
	out, err := exec.Command(node, filepath.Join(dir, "check.cjs"), kind, file).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("checking %s messages: %v: %s", kind, err, out)
	}
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" {
			problems = append(problems, line)
		}
	}
	return problems, nil
}
