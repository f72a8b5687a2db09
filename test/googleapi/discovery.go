package googleapi

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Discovery is a Google API's discovery document: the published description of its
// methods, their parameters and scopes, and the schemas of what they take and give.
type Discovery struct {
	Parameters map[string]Parameter `json:"parameters"`
	Resources  map[string]Resource  `json:"resources"`
	Schemas    map[string]*Schema   `json:"schemas"`
}

type Resource struct {
	Methods map[string]Method `json:"methods"`
}

type Method struct {
	ID         string               `json:"id"`
	HTTPMethod string               `json:"httpMethod"`
	FlatPath   string               `json:"flatPath"`
	Path       string               `json:"path"`
	Parameters map[string]Parameter `json:"parameters"`
	Request    *Schema              `json:"request"`
	Response   *Schema              `json:"response"`
	Scopes     []string             `json:"scopes"`
}

type Parameter struct {
	Type     string   `json:"type"`
	Location string   `json:"location"`
	Required bool     `json:"required"`
	Enum     []string `json:"enum"`
	Minimum  string   `json:"minimum"`
	Maximum  string   `json:"maximum"`
	Pattern  string   `json:"pattern"`
}

type Schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Format               string             `json:"format"`
	Properties           map[string]*Schema `json:"properties"`
	AdditionalProperties *Schema            `json:"additionalProperties"`
	Items                *Schema            `json:"items"`
	ReadOnly             bool               `json:"readOnly"`
	Enum                 []string           `json:"enum"`
	Annotations          struct {
		Required []string `json:"required"`
	} `json:"annotations"`
}

// DirectoryDiscovery reads the Admin SDK Directory API's discovery document that
// Google ships with its Go client, from the module the build uses.
func DirectoryDiscovery() (*Discovery, error) {
	return readDiscovery("admin", "directory", "v1", "admin-api.json")
}

// ReportsDiscovery reads the Admin SDK Reports API's discovery document, the same way.
func ReportsDiscovery() (*Discovery, error) {
	return readDiscovery("admin", "reports", "v1", "admin-api.json")
}

func readDiscovery(path ...string) (*Discovery, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "google.golang.org/api").Output()
	if err != nil {
		return nil, fmt.Errorf("finding google.golang.org/api: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(append([]string{strings.TrimSpace(string(out))}, path...)...))
	if err != nil {
		return nil, err
	}
	var d Discovery
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Find is the method a request names, by HTTP method and path below the API's root,
// with the path's parameters.
func (d *Discovery) Find(httpMethod, path string) (*Method, map[string]string, bool) {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	for _, r := range d.Resources {
		for _, m := range r.Methods {
			if m.HTTPMethod != httpMethod {
				continue
			}
			template := m.FlatPath
			if template == "" {
				template = m.Path
			}
			if params, ok := matchPath(template, segments); ok {
				return &m, params, true
			}
		}
	}
	return nil, nil, false
}

func matchPath(template string, segments []string) (map[string]string, bool) {
	parts := strings.Split(template, "/")
	if len(parts) != len(segments) {
		return nil, false
	}
	params := map[string]string{}
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			v, err := url.PathUnescape(segments[i])
			if err != nil || v == "" {
				return nil, false
			}
			params[strings.Trim(p, "{}")] = v
		} else if p != segments[i] {
			return nil, false
		}
	}
	return params, true
}

// CheckQuery lists what in a request's query the method does not declare, or declares
// otherwise.
func (d *Discovery) CheckQuery(m *Method, query url.Values) []string {
	var problems []string
	for name, values := range query {
		p, ok := m.Parameters[name]
		if !ok {
			p, ok = d.Parameters[name]
		}
		if !ok || p.Location != "query" {
			problems = append(problems, fmt.Sprintf("%s: query parameter %q is not declared", m.ID, name))
			continue
		}
		for _, v := range values {
			if problem := p.check(v); problem != "" {
				problems = append(problems, fmt.Sprintf("%s: query parameter %s=%q %s", m.ID, name, v, problem))
			}
		}
	}
	for name, p := range m.Parameters {
		if p.Required && p.Location == "query" && query.Get(name) == "" {
			problems = append(problems, fmt.Sprintf("%s: required query parameter %s is missing", m.ID, name))
		}
	}
	return problems
}

func (p Parameter) check(v string) string {
	switch p.Type {
	case "integer":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "is not an integer"
		}
		if lo, err := strconv.ParseInt(p.Minimum, 10, 64); err == nil && n < lo {
			return "is below the minimum " + p.Minimum
		}
		if hi, err := strconv.ParseInt(p.Maximum, 10, 64); err == nil && n > hi {
			return "is above the maximum " + p.Maximum
		}
	case "boolean":
		if v != "true" && v != "false" {
			return "is not a boolean"
		}
	}
	if len(p.Enum) > 0 && !slices.Contains(p.Enum, v) {
		return fmt.Sprintf("is not one of %v", p.Enum)
	}
	if p.Pattern != "" && !regexp.MustCompile("^(?:"+p.Pattern+")$").MatchString(v) {
		return "does not match " + p.Pattern
	}
	return ""
}

// CheckRequest lists where a request body departs from the method's request schema:
// unknown or read-only fields, wrong types, fields the method requires missing.
func (d *Discovery) CheckRequest(m *Method, body []byte) []string {
	if m.Request == nil {
		if len(strings.TrimSpace(string(body))) > 0 {
			return []string{m.ID + ": takes no body"}
		}
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return []string{m.ID + ": the body is not JSON: " + err.Error()}
	}
	var problems []string
	d.check(&problems, m.ID, "request", m.Request, v, true)
	schema := d.resolve(m.Request)
	obj, _ := v.(map[string]any)
	for name, prop := range schema.Properties {
		if slices.Contains(d.resolve(prop).Annotations.Required, m.ID) || slices.Contains(prop.Annotations.Required, m.ID) {
			if _, ok := obj[name]; !ok {
				problems = append(problems, fmt.Sprintf("%s: request: %s is required", m.ID, name))
			}
		}
	}
	return problems
}

// CheckResponse lists where an answer departs from the method's response schema.
func (d *Discovery) CheckResponse(m *Method, body []byte) []string {
	if m.Response == nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return []string{m.ID + ": the answer is not JSON: " + err.Error()}
	}
	var problems []string
	d.check(&problems, m.ID, "response", m.Response, v, false)
	return problems
}

func (d *Discovery) resolve(s *Schema) *Schema {
	for s != nil && s.Ref != "" {
		s = d.Schemas[s.Ref]
	}
	if s == nil {
		return &Schema{Type: "any"}
	}
	return s
}

func (d *Discovery) check(problems *[]string, method, at string, s *Schema, v any, request bool) {
	s = d.resolve(s)
	bad := func(format string, args ...any) {
		*problems = append(*problems, fmt.Sprintf("%s: %s: ", method, at)+fmt.Sprintf(format, args...))
	}
	if v == nil {
		return
	}
	switch s.Type {
	case "any", "":
		return
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("is %T, not an object", v)
			return
		}
		names := make([]string, 0, len(obj))
		for name := range obj {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			prop, known := s.Properties[name]
			switch {
			case known && request && prop.ReadOnly:
				bad("%s is output only", name)
			case known:
				d.check(problems, method, at+"."+name, prop, obj[name], request)
			case s.AdditionalProperties != nil:
				d.check(problems, method, at+"."+name, s.AdditionalProperties, obj[name], request)
			default:
				bad("%s is not a field", name)
			}
		}
	case "array":
		list, ok := v.([]any)
		if !ok {
			bad("is %T, not an array", v)
			return
		}
		for i, item := range list {
			d.check(problems, method, fmt.Sprintf("%s[%d]", at, i), s.Items, item, request)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			bad("is %T, not a string", v)
			return
		}
		if s.Format == "int64" {
			if _, err := strconv.ParseInt(str, 10, 64); err != nil {
				bad("%q is not an int64", str)
			}
		}
		if len(s.Enum) > 0 && !slices.Contains(s.Enum, str) {
			bad("%q is not one of %v", str, s.Enum)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("is %T, not a boolean", v)
		}
	case "integer", "number":
		if _, ok := v.(float64); !ok {
			bad("is %T, not a number", v)
		}
	}
}
