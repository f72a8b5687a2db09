// Command apilint checks the API types against the Kubernetes API conventions that
// cluster-api enforces with kube-api-linter: commentstart, conditions, maxlength,
// nobools, optionalorrequired, requiredfields and statussubresource. Every field of a
// serialized struct is checked; it prints one line per finding and fails if any.
//
//	go run ./hack/apilint ./api/v1alpha1
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// boolExceptions are the bool fields kept on purpose: SCIM's own shape, which identity
// providers and apps send as a boolean.
var boolExceptions = map[string]bool{"Email.primary": true}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: apilint <api package directory>")
		os.Exit(2)
	}
	findings, err := check(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, f := range findings {
		fmt.Println(f)
	}
	if len(findings) > 0 {
		os.Exit(1)
	}
}

// typeDecl is a declared type with the markers above it.
type typeDecl struct {
	spec    *ast.TypeSpec
	markers string
	file    string
}

// check returns the findings for the Go files of one API package.
func check(dir string) ([]string, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	types := map[string]typeDecl{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || strings.HasPrefix(filepath.Base(name), "zz_generated") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				types[ts.Name.Name] = typeDecl{spec: ts, markers: commentText(gd.Doc) + commentText(ts.Doc), file: name}
			}
		}
	}
	var out []string
	for name, t := range types {
		st, ok := t.spec.Type.(*ast.StructType)
		if !ok {
			continue
		}
		if strings.Contains(t.markers, "+kubebuilder:object:root=true") && hasField(st, "Status") &&
			!strings.Contains(t.markers, "+kubebuilder:subresource:status") {
			out = append(out, finding(fset, t.spec.Pos(), "statussubresource", name+" has a status but no +kubebuilder:subresource:status"))
		}
		for _, field := range st.Fields.List {
			out = append(out, checkField(fset, types, name, field)...)
		}
	}
	sort.Strings(out)
	return out, nil
}

func checkField(fset *token.FileSet, types map[string]typeDecl, typeName string, field *ast.Field) []string {
	if field.Tag == nil || len(field.Names) == 0 {
		return nil // embedded TypeMeta, ObjectMeta, ListMeta and inlined structs
	}
	tag := reflect.StructTag(strings.Trim(field.Tag.Value, "`"))
	jsonName, opts, _ := strings.Cut(tag.Get("json"), ",")
	if jsonName == "" || jsonName == "-" || jsonName == "metadata" || strings.HasSuffix(typeName, "List") && jsonName == "items" {
		return nil
	}
	where := typeName + "." + jsonName
	markers := commentText(field.Doc)
	var out []string
	report := func(rule, msg string) { out = append(out, finding(fset, field.Pos(), rule, where+": "+msg)) }

	if doc := docText(field.Doc); !strings.HasPrefix(doc, jsonName+" ") {
		report("commentstart", fmt.Sprintf("the comment must start with the field's JSON name %q", jsonName))
	}
	optional := strings.Contains(markers, "+optional") || strings.Contains(markers, "+kubebuilder:validation:Optional")
	required := strings.Contains(markers, "+required") || strings.Contains(markers, "+kubebuilder:validation:Required")
	omitempty := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
	_, pointer := field.Type.(*ast.StarExpr)
	switch {
	case optional == required:
		report("optionalorrequired", "mark the field exactly one of +optional or +required")
	case required && (omitempty || pointer):
		report("requiredfields", "a required field is neither a pointer nor omitempty")
	case optional && !omitempty:
		report("optionalorrequired", "an optional field is omitempty")
	}
	if isBool(field.Type) && !boolExceptions[where] {
		report("nobools", "use a string enum, which can grow a third value, instead of a bool")
	}
	if strings.Contains(tag.Get("patchStrategy"), "merge") {
		report("conditions", "patchStrategy does not apply to custom resources; use +listType=map")
	}
	if isConditions(field.Type) {
		for _, m := range []string{"+listType=map", "+listMapKey=type", "+optional"} {
			if !strings.Contains(markers, m) {
				report("conditions", "conditions need "+m)
			}
		}
	}
	out = append(out, checkLength(field.Type, markers, types, report)...)
	return out
}

// checkLength asks every string to be bounded (MaxLength, Enum, Pattern of fixed
// shape or Format) and every list to have MaxItems with bounded items.
func checkLength(expr ast.Expr, markers string, types map[string]typeDecl, report func(rule, msg string)) []string {
	if p, ok := expr.(*ast.StarExpr); ok {
		expr = p.X
	}
	switch t := expr.(type) {
	case *ast.ArrayType:
		if ident, ok := t.Elt.(*ast.Ident); ok && ident.Name == "byte" {
			return nil
		}
		if !strings.Contains(markers, "MaxItems=") {
			report("maxlength", "a list needs +kubebuilder:validation:MaxItems")
		}
		if isString(t.Elt, types) && !bounded(markers, "items:") && !typeBounded(t.Elt, types) {
			report("maxlength", "a list of strings needs +kubebuilder:validation:items:MaxLength (or items:Enum)")
		}
	case *ast.MapType:
		if !strings.Contains(markers, "MaxProperties=") {
			report("maxlength", "a map needs +kubebuilder:validation:MaxProperties")
		}
	default:
		if isString(expr, types) && !bounded(markers, "") && !typeBounded(expr, types) {
			report("maxlength", "a string needs +kubebuilder:validation:MaxLength (or Enum, or Format)")
		}
	}
	return nil
}

func bounded(markers, prefix string) bool {
	for _, m := range []string{"MaxLength=", "Enum=", "Format="} {
		if strings.Contains(markers, "+kubebuilder:validation:"+prefix+m) {
			return true
		}
	}
	return false
}

// typeBounded reports whether a named string type carries its own bound.
func typeBounded(expr ast.Expr, types map[string]typeDecl) bool {
	ident, ok := expr.(*ast.Ident)
	if !ok {
		return false
	}
	t, ok := types[ident.Name]
	return ok && bounded(t.markers, "")
}

func isString(expr ast.Expr, types map[string]typeDecl) bool {
	ident, ok := expr.(*ast.Ident)
	if !ok {
		return false
	}
	if ident.Name == "string" {
		return true
	}
	t, ok := types[ident.Name]
	if !ok {
		return false
	}
	under, ok := t.spec.Type.(*ast.Ident)
	return ok && under.Name == "string"
}

func isBool(expr ast.Expr) bool {
	if p, ok := expr.(*ast.StarExpr); ok {
		expr = p.X
	}
	ident, ok := expr.(*ast.Ident)
	return ok && ident.Name == "bool"
}

func isConditions(expr ast.Expr) bool {
	arr, ok := expr.(*ast.ArrayType)
	if !ok {
		return false
	}
	sel, ok := arr.Elt.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Condition"
}

func hasField(st *ast.StructType, name string) bool {
	for _, f := range st.Fields.List {
		for _, n := range f.Names {
			if n.Name == name {
				return true
			}
		}
	}
	return false
}

// commentText is the raw comment lines, markers included.
func commentText(g *ast.CommentGroup) string {
	if g == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range g.List {
		b.WriteString(c.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// docText is the comment as prose, markers left out.
func docText(g *ast.CommentGroup) string {
	if g == nil {
		return ""
	}
	return g.Text()
}

func finding(fset *token.FileSet, pos token.Pos, rule, msg string) string {
	p := fset.Position(pos)
	return fmt.Sprintf("%s:%d: %s: %s", filepath.Base(p.Filename), p.Line, rule, msg)
}
