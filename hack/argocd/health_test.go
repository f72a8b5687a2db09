package main

import (
	"os"
	"path/filepath"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

const root = "../../config/argocd"

type healthTests struct {
	Tests []struct {
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
		InputPath string `json:"inputPath"`
	} `json:"tests"`
}

// TestHealthChecks runs every kind's health.lua on its testdata under gopher-lua, the
// interpreter Argo CD uses, with only the libraries Argo CD's restricted mode loads.
func TestHealthChecks(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(root, "identity.roster.dev", kind)
			script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
			if err != nil {
				t.Fatal(err)
			}
			var tests healthTests
			readYAML(t, filepath.Join(dir, "health_test.yaml"), &tests)
			if len(tests.Tests) < 5 {
				t.Fatalf("%d cases, want every state covered", len(tests.Tests))
			}
			for _, tc := range tests.Tests {
				var obj map[string]any
				readYAML(t, filepath.Join(dir, tc.InputPath), &obj)
				status, message := run(t, string(script), obj)
				if status != tc.HealthStatus.Status || message != tc.HealthStatus.Message {
					t.Errorf("%s: got %s %q, want %s %q", tc.InputPath, status, message, tc.HealthStatus.Status, tc.HealthStatus.Message)
				}
			}
		})
	}
}

// TestGeneratedFilesAreCurrent: the per-kind copies and argocd-cm.yaml match health.lua.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(root, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range Kinds {
		copy, err := os.ReadFile(filepath.Join(root, "identity.roster.dev", kind, "health.lua"))
		if err != nil || string(copy) != string(script) {
			t.Errorf("%s/health.lua is not a copy of health.lua: run make manifests", kind)
		}
	}
	cm, err := os.ReadFile(filepath.Join(root, "argocd-cm.yaml"))
	if err != nil || string(cm) != ConfigMap(string(script)) {
		t.Error("argocd-cm.yaml is stale: run make manifests")
	}
	var parsed map[string]any
	if err := yaml.Unmarshal(cm, &parsed); err != nil {
		t.Fatalf("argocd-cm.yaml is not YAML: %v", err)
	}
	if data := parsed["data"].(map[string]any); data["resource.customizations.health.identity.roster.dev_User"] != string(script) {
		t.Error("the argocd-cm entry does not hold the script as written")
	}
}

// run evaluates a health script on obj with the base and table libraries only.
func run(t *testing.T, script string, obj map[string]any) (string, string) {
	t.Helper()
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		t.Fatalf("the script failed: %v", err)
	}
	result, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the script returned %s, not a table", L.Get(-1).Type())
	}
	return result.RawGetString("status").String(), result.RawGetString("message").String()
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch t := v.(type) {
	case map[string]any:
		tbl := L.NewTable()
		for k, e := range t {
			tbl.RawSetString(k, toLua(L, e))
		}
		return tbl
	case []any:
		tbl := L.NewTable()
		for _, e := range t {
			tbl.Append(toLua(L, e))
		}
		return tbl
	case string:
		return lua.LString(t)
	case float64:
		return lua.LNumber(t)
	case bool:
		return lua.LBool(t)
	}
	return lua.LNil
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
