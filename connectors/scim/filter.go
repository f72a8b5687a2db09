package scim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Filter is a parsed SCIM filter (RFC 7644 §3.4.2.2).
type Filter interface {
	// Match reports whether the resource (or, inside a value path, the element) matches.
	Match(r map[string]any) bool
}

// Eq builds the filter `attr eq "value"` with the value quoted as JSON.
func Eq(attr, value string) string {
	quoted, _ := json.Marshal(value)
	return attr + " eq " + string(quoted)
}

// MaxFilterLength and MaxFilterDepth bound what ParseFilter accepts: identity
// providers send a filter of one comparison, and a filter nested without bound would
// take a parser's stack with it.
const (
	MaxFilterLength = 4096
	MaxFilterDepth  = 16
)

// ParseFilter parses a filter expression: attribute comparisons (eq ne co sw ew gt lt
// ge le pr), and / or / not with parentheses, value paths such as
// `emails[type eq "work"]`, and the form Entra ID sends,
// `emails[type eq "work"].value eq "…"`. Operators and keywords ignore letter case.
func ParseFilter(s string) (Filter, error) {
	if len(s) > MaxFilterLength {
		return nil, fmt.Errorf("the filter is %d characters long; at most %d are accepted", len(s), MaxFilterLength)
	}
	tokens, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{tokens: tokens}
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	if !p.done() {
		return nil, fmt.Errorf("unexpected %q after the filter", p.peek().text)
	}
	return f, nil
}

// Equality reports the attribute and value of a filter of the form `attr eq "value"`,
// which a store can answer from an index.
func Equality(f Filter) (Path, string, bool) {
	c, ok := f.(*compare)
	if !ok || c.op != "eq" {
		return Path{}, "", false
	}
	s, ok := c.value.(string)
	return c.path, s, ok
}

type tokenKind int

const (
	tokWord tokenKind = iota // attribute paths, operators, keywords, true/false/null
	tokString
	tokNumber
	tokOpen
	tokClose
	tokOpenBracket
	tokCloseBracket
)

type token struct {
	kind tokenKind
	text string
	str  string // decoded value of a string token
}

func lex(s string) ([]token, error) {
	var tokens []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			tokens = append(tokens, token{kind: tokOpen, text: "("})
			i++
		case c == ')':
			tokens = append(tokens, token{kind: tokClose, text: ")"})
			i++
		case c == '[':
			tokens = append(tokens, token{kind: tokOpenBracket, text: "["})
			i++
		case c == ']':
			tokens = append(tokens, token{kind: tokCloseBracket, text: "]"})
			i++
		case c == '"':
			end, decoded, err := lexString(s, i)
			if err != nil {
				return nil, err
			}
			tokens = append(tokens, token{kind: tokString, text: s[i:end], str: decoded})
			i = end
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && strings.IndexByte("0123456789.eE+-", s[j]) >= 0 {
				j++
			}
			tokens = append(tokens, token{kind: tokNumber, text: s[i:j]})
			i = j
		case isWordChar(rune(c)):
			j := i
			for j < len(s) && isWordChar(rune(s[j])) {
				j++
			}
			tokens = append(tokens, token{kind: tokWord, text: s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q at %d", c, i)
		}
	}
	return tokens, nil
}

func isWordChar(c rune) bool {
	return unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("_-.:$", c)
}

// lexString reads a JSON string starting at s[start] == '"'.
func lexString(s string, start int) (int, string, error) {
	for i := start + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			var decoded string
			if err := json.Unmarshal([]byte(s[start:i+1]), &decoded); err != nil {
				return 0, "", fmt.Errorf("invalid string %s: %w", s[start:i+1], err)
			}
			return i + 1, decoded, nil
		}
	}
	return 0, "", fmt.Errorf("unterminated string at %d", start)
}

type parser struct {
	tokens []token
	pos    int
	depth  int // parentheses and value paths open
}

func (p *parser) done() bool { return p.pos >= len(p.tokens) }

func (p *parser) peek() token {
	if p.done() {
		return token{kind: -1, text: "end of filter"}
	}
	return p.tokens[p.pos]
}

func (p *parser) next() token { t := p.peek(); p.pos++; return t }

func (p *parser) keyword(word string) bool {
	t := p.peek()
	if t.kind == tokWord && strings.EqualFold(t.text, word) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(kind tokenKind, what string) error {
	if t := p.next(); t.kind != kind {
		return fmt.Errorf("expected %s, found %q", what, t.text)
	}
	return nil
}

func (p *parser) or() (Filter, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		left = &logical{and: false, left: left, right: right}
	}
	return left, nil
}

func (p *parser) and() (Filter, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		left = &logical{and: true, left: left, right: right}
	}
	return left, nil
}

func (p *parser) unary() (Filter, error) {
	if p.keyword("not") {
		f, err := p.group()
		if err != nil {
			return nil, err
		}
		return &not{f: f}, nil
	}
	if p.peek().kind == tokOpen {
		return p.group()
	}
	return p.attrExpr()
}

// enter opens a nesting level; leave must follow.
func (p *parser) enter() error {
	if p.depth++; p.depth > MaxFilterDepth {
		return fmt.Errorf("the filter nests deeper than %d levels", MaxFilterDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) group() (Filter, error) {
	if err := p.expect(tokOpen, "("); err != nil {
		return nil, err
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	return f, p.expect(tokClose, ")")
}

func (p *parser) attrExpr() (Filter, error) {
	t := p.next()
	if t.kind != tokWord {
		return nil, fmt.Errorf("expected an attribute, found %q", t.text)
	}
	path, err := ParsePath(t.text)
	if err != nil {
		return nil, err
	}
	if p.peek().kind == tokOpenBracket {
		return p.valuePath(path)
	}
	return p.comparison(path)
}

func (p *parser) valuePath(path Path) (Filter, error) {
	p.next()
	if err := p.enter(); err != nil {
		return nil, err
	}
	inner, err := p.or()
	p.leave()
	if err != nil {
		return nil, err
	}
	if err := p.expect(tokCloseBracket, "]"); err != nil {
		return nil, err
	}
	vp := &valuePath{path: path, filter: inner}
	// emails[type eq "work"].value eq "…": a sub-attribute compared on the matching elements.
	if t := p.peek(); t.kind == tokWord && strings.HasPrefix(t.text, ".") {
		p.next()
		sub, err := ParsePath(t.text[1:])
		if err != nil {
			return nil, err
		}
		cmp, err := p.comparison(sub)
		if err != nil {
			return nil, err
		}
		vp.filter = &logical{and: true, left: inner, right: cmp}
	}
	return vp, nil
}

var operators = map[string]bool{"eq": true, "ne": true, "co": true, "sw": true, "ew": true, "gt": true, "lt": true, "ge": true, "le": true, "pr": true}

func (p *parser) comparison(path Path) (Filter, error) {
	t := p.next()
	op := strings.ToLower(t.text)
	if t.kind != tokWord || !operators[op] {
		return nil, fmt.Errorf("expected an operator after %s, found %q", path, t.text)
	}
	if op == "pr" {
		return &compare{path: path, op: op}, nil
	}
	v := p.next()
	var value any
	switch {
	case v.kind == tokString:
		value = v.str
	case v.kind == tokNumber:
		n, err := strconv.ParseFloat(v.text, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid number %q", v.text)
		}
		value = n
	case v.kind == tokWord && strings.EqualFold(v.text, "true"):
		value = true
	case v.kind == tokWord && strings.EqualFold(v.text, "false"):
		value = false
	case v.kind == tokWord && strings.EqualFold(v.text, "null"):
		value = nil
	default:
		return nil, fmt.Errorf("expected a value after %s %s, found %q", path, op, v.text)
	}
	return &compare{path: path, op: op, value: value}, nil
}

type logical struct {
	and         bool
	left, right Filter
}

func (l *logical) Match(r map[string]any) bool {
	if l.and {
		return l.left.Match(r) && l.right.Match(r)
	}
	return l.left.Match(r) || l.right.Match(r)
}

type not struct{ f Filter }

func (n *not) Match(r map[string]any) bool { return !n.f.Match(r) }

type valuePath struct {
	path   Path
	filter Filter
}

func (v *valuePath) Match(r map[string]any) bool {
	value, _ := Resource(r).Get(v.path)
	for _, e := range asList(value) {
		if m, ok := e.(map[string]any); ok && v.filter.Match(m) {
			return true
		}
	}
	return false
}

type compare struct {
	path  Path
	op    string
	value any
}

// caseExact attributes compare with letter case (RFC 7643 §3.1, §4.1.1).
var caseExact = map[string]bool{"id": true, "externalid": true}

func (c *compare) Match(r map[string]any) bool {
	attr := Path{Schema: c.path.Schema, Attr: c.path.Attr}
	value, present := Resource(r).Get(attr)
	if !present {
		return c.op == "eq" && c.value == nil || c.op == "ne" && c.value != nil
	}
	exact := caseExact[strings.ToLower(c.path.Attr)]
	for _, v := range asList(value) {
		// Multi-valued complex attributes compare their "value" sub-attribute unless told.
		sub := c.path.Sub
		if m, ok := v.(map[string]any); ok {
			if sub == "" {
				sub = "value"
			}
			v = Resource(m).lookup(sub)
		} else if sub != "" {
			continue
		}
		if c.op == "pr" {
			if v != nil {
				return true
			}
			continue
		}
		if compareValue(v, c.op, c.value, exact) {
			return true
		}
	}
	return false
}

func compareValue(have any, op string, want any, exact bool) bool {
	switch w := want.(type) {
	case nil:
		return (op == "eq") == (have == nil)
	case bool:
		h, ok := Bool(have)
		return ok && (op == "eq") == (h == w) && (op == "eq" || op == "ne")
	case float64:
		h, ok := number(have)
		if !ok {
			return false
		}
		return ordered(op, compareFloat(h, w))
	case string:
		h, ok := have.(string)
		if !ok {
			return false
		}
		if !exact {
			h, w = strings.ToLower(h), strings.ToLower(w)
		}
		switch op {
		case "co":
			return strings.Contains(h, w)
		case "sw":
			return strings.HasPrefix(h, w)
		case "ew":
			return strings.HasSuffix(h, w)
		}
		return ordered(op, strings.Compare(h, w))
	}
	return false
}

func ordered(op string, cmp int) bool {
	switch op {
	case "eq":
		return cmp == 0
	case "ne":
		return cmp != 0
	case "gt":
		return cmp > 0
	case "ge":
		return cmp >= 0
	case "lt":
		return cmp < 0
	case "le":
		return cmp <= 0
	}
	return false
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}
