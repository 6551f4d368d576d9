package main

import (
	"fmt"
	"regexp"
	"strings"
)

// A C declaration, as far as the binding needs it: the subset of C that
// mlx-c's headers (and capi/mlxc.h) use for functions.
type decl struct {
	Name     string  // the C function name as declared
	Symbol   string  // the symbol to look up (Name without a __v06 suffix)
	Ret      ctype   // the result type
	Params   []param // in order
	Optional bool    // marked MLXC_OPTIONAL
}

type param struct {
	Name string
	Type ctype
}

// ctype is a C type reduced to what decides how a value crosses the ABI:
// the base name, the pointer depth, whether the pointee is const, and
// whether it is a function pointer.
type ctype struct {
	Base    string // "int", "mlx_array", "char", "void", ...
	Ptr     int    // number of '*'
	Const   bool   // const pointee (or a const value, for Ptr == 0)
	FuncPtr bool
}

func (t ctype) String() string {
	if t.FuncPtr {
		return "funcptr"
	}
	s := t.Base
	if t.Const && t.Ptr > 0 {
		s = "const " + s
	}
	return s + strings.Repeat("*", t.Ptr)
}

var (
	blockComment = regexp.MustCompile(`(?s)/\*.*?\*/`)
	lineComment  = regexp.MustCompile(`//[^\n]*`)
	typedefBlock = regexp.MustCompile(`(?s)typedef\s+(struct|enum)\s+\w*\s*\{[^}]*\}\s*\w+\s*;`)
	typedefLine  = regexp.MustCompile(`(?s)typedef[^;]*;`)
	funcDecl     = regexp.MustCompile(`(?s)(MLXC_OPTIONAL\s+)?((?:const\s+)?\w+(?:\s*\*)*)\s*\b(\w+)\s*\(((?:[^()]|\([^()]*\))*)\)\s*;`)
	funcPtrParam = regexp.MustCompile(`^\w+\s*\(\s*\*\s*(\w+)\s*\)\s*\(.*\)$`)
)

// parseHeader returns the function declarations of a C header in order.
// It understands the plain prototypes mlx-c writes: no macros other than
// MLXC_OPTIONAL, function pointers only as parameters. Variadic functions
// cannot be bound (purego would pass their float arguments wrong): they are
// an error, or skipped when skipVariadic is set (to read mlx-c's own
// headers, which have a few).
func parseHeader(src string, skipVariadic bool) ([]decl, error) {
	src = blockComment.ReplaceAllString(src, " ")
	src = lineComment.ReplaceAllString(src, "")
	var kept []string
	cont := false
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimSpace(line)
		if cont || strings.HasPrefix(t, "#") {
			cont = strings.HasSuffix(t, "\\")
			continue
		}
		kept = append(kept, line)
	}
	src = strings.Join(kept, "\n")
	src = typedefBlock.ReplaceAllString(src, " ")
	src = typedefLine.ReplaceAllString(src, " ")

	var out []decl
	seen := map[string]bool{}
	for _, m := range funcDecl.FindAllStringSubmatch(src, -1) {
		d := decl{Name: m[3], Optional: m[1] != ""}
		if d.Name == "MLXC_HANDLE" {
			continue
		}
		d.Symbol = strings.TrimSuffix(d.Name, "__v06")
		ret, err := parseType(m[2])
		if err != nil {
			return nil, fmt.Errorf("%s: result: %w", d.Name, err)
		}
		d.Ret = ret
		ps := strings.TrimSpace(m[4])
		if strings.HasSuffix(ps, "...") {
			if skipVariadic {
				continue
			}
			return nil, fmt.Errorf("%s is variadic: it cannot be bound", d.Name)
		}
		if ps != "" && ps != "void" {
			for i, p := range splitParams(ps) {
				pp, err := parseParam(p)
				if err != nil {
					return nil, fmt.Errorf("%s: parameter %d %q: %w", d.Name, i, p, err)
				}
				d.Params = append(d.Params, pp)
			}
		}
		if seen[d.Name] {
			return nil, fmt.Errorf("%s declared twice", d.Name)
		}
		seen[d.Name] = true
		out = append(out, d)
	}
	return out, nil
}

// splitParams splits a parameter list at the commas outside parentheses.
func splitParams(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

func parseParam(p string) (param, error) {
	p = strings.Join(strings.Fields(p), " ")
	if m := funcPtrParam.FindStringSubmatch(p); m != nil {
		return param{Name: m[1], Type: ctype{Base: "void", FuncPtr: true}}, nil
	}
	// The name is the last identifier; everything before it is the type.
	i := strings.LastIndexFunc(p, func(r rune) bool { return r == ' ' || r == '*' })
	if i < 0 {
		return param{}, fmt.Errorf("no parameter name")
	}
	t, err := parseType(p[:i+1])
	if err != nil {
		return param{}, err
	}
	return param{Name: p[i+1:], Type: t}, nil
}

func parseType(s string) (ctype, error) {
	var t ctype
	t.Ptr = strings.Count(s, "*")
	s = strings.ReplaceAll(s, "*", " ")
	for _, f := range strings.Fields(s) {
		switch f {
		case "const":
			t.Const = true
		default:
			if t.Base != "" {
				return t, fmt.Errorf("cannot read type %q", s)
			}
			t.Base = f
		}
	}
	if t.Base == "" {
		return t, fmt.Errorf("empty type")
	}
	return t, nil
}

// signature is the declaration with names dropped and top-level const
// removed: what decides ABI compatibility between two headers.
func (d decl) signature() string {
	var ps []string
	for _, p := range d.Params {
		t := p.Type
		if t.Ptr == 0 {
			t.Const = false
		}
		ps = append(ps, t.String())
	}
	r := d.Ret
	if r.Ptr == 0 {
		r.Const = false
	}
	return fmt.Sprintf("%s %s(%s)", r, d.Symbol, strings.Join(ps, ", "))
}
