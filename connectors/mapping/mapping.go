// Package mapping evaluates the CEL expressions of AppConnection attribute mappings,
// DirectorySync record mappings and filters, and Role rules.
package mapping

import (
	"errors"
	"fmt"
	"sort"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// costLimit bounds one evaluation, so that no expression can stall a reconcile.
const costLimit = 1_000_000

// Env is a CEL environment with the named variables, each a dynamic value.
type Env struct {
	env *cel.Env
}

// NewEnv returns an environment declaring vars, with the string, list and encoder
// extensions.
func NewEnv(vars ...string) (*Env, error) {
	opts := []cel.EnvOption{ext.Strings(), ext.Lists(), ext.Encoders(), cel.OptionalTypes()}
	for _, v := range vars {
		opts = append(opts, cel.Variable(v, cel.DynType))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	return &Env{env: env}, nil
}

// Program is one compiled expression.
type Program struct {
	source  string
	program cel.Program
}

// Compile compiles an expression; the error is the compiler's message.
func (e *Env) Compile(expr string) (*Program, error) {
	ast, issues := e.env.Compile(expr)
	if issues != nil && issues.Err() != nil {
		return nil, issues.Err()
	}
	var opts []cel.ProgramOption
	if !boundedBelow(e.env, ast, costLimit) {
		opts = append(opts, cel.CostLimit(costLimit))
	}
	prg, err := e.env.Program(ast, opts...)
	if err != nil {
		return nil, err
	}
	return &Program{source: expr, program: prg}, nil
}

// boundedBelow tells whether the checker's cost estimate proves that no evaluation of
// ast can cost more than limit, whatever its variables hold. Such an expression needs no
// cost tracking at run time, which would take more CPU than the evaluation itself; every
// other expression is tracked and stopped at the limit.
func boundedBelow(env *cel.Env, ast *cel.Ast, limit uint64) bool {
	cost, err := env.EstimateCost(ast, unknownSizes{})
	return err == nil && cost.Max <= limit
}

// unknownSizes leaves every size and call cost to the checker's defaults: a variable's
// string or list may be of any length.
type unknownSizes struct{}

func (unknownSizes) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }

func (unknownSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// Eval evaluates to a Go value: string, bool, int64, float64, []any, map[string]any or
// nil for null.
func (p *Program) Eval(vars map[string]any) (any, error) {
	out, _, err := p.program.Eval(vars)
	if err != nil {
		return nil, err
	}
	return native(out)
}

// EvalBool evaluates an expression that must be true or false.
func (p *Program) EvalBool(vars map[string]any) (bool, error) {
	v, err := p.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%q evaluates to %T, not a boolean", p.source, v)
	}
	return b, nil
}

// Mappings are compiled target ← expression pairs.
type Mappings struct {
	targets  []string
	programs []*Program
}

// CompileMappings compiles defaults overlaid with overrides (same target: override wins).
// The error names the target whose expression does not compile.
func (e *Env) CompileMappings(defaults, overrides []identityv1alpha1.ExpressionMapping) (*Mappings, error) {
	merged := map[string]string{}
	for _, m := range defaults {
		merged[m.Target] = m.Expression
	}
	for _, m := range overrides {
		merged[m.Target] = m.Expression
	}
	targets := make([]string, 0, len(merged))
	for t := range merged {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	out := &Mappings{targets: targets, programs: make([]*Program, len(targets))}
	var errs []error
	for i, t := range targets {
		p, err := e.Compile(merged[t])
		if err != nil {
			errs = append(errs, fmt.Errorf("mapping for %s: %w", t, err))
			continue
		}
		out.programs[i] = p
	}
	return out, errors.Join(errs...)
}

// Apply evaluates every mapping. A null result leaves the target out.
func (m *Mappings) Apply(vars map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(m.targets))
	for i, t := range m.targets {
		v, err := m.programs[i].Eval(vars)
		if err != nil {
			return nil, fmt.Errorf("mapping for %s: %w", t, err)
		}
		if v != nil {
			out[t] = v
		}
	}
	return out, nil
}

func native(v ref.Val) (any, error) {
	switch t := v.(type) {
	case types.Null:
		return nil, nil
	case types.String:
		return string(t), nil
	case types.Bool:
		return bool(t), nil
	case types.Int:
		return int64(t), nil
	case types.Uint:
		return int64(t), nil
	case types.Double:
		return float64(t), nil
	case traits.Lister:
		var out []any
		it := t.Iterator()
		for it.HasNext() == types.True {
			e, err := native(it.Next())
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	case traits.Mapper:
		out := map[string]any{}
		it := t.Iterator()
		for it.HasNext() == types.True {
			k := it.Next()
			key, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map keys must be strings, not %s", k.Type())
			}
			e, err := native(t.Get(k))
			if err != nil {
				return nil, err
			}
			out[string(key)] = e
		}
		return out, nil
	}
	if v.Type() == types.TimestampType || v.Type() == types.DurationType {
		return fmt.Sprint(v.Value()), nil
	}
	return nil, fmt.Errorf("unsupported result type %s", v.Type())
}
