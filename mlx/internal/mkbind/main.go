// Command mkbind generates package mlx's bindings of the C ABI from the one
// place every function is declared: mlx/capi/mlxc.h, whose prototypes have
// mlx-c's names and signatures.
//
// For every declared function it emits a typed Go function of the same name
// that lowers its arguments to the C calling convention: handles and
// integers as words, slices as pointer + length, strings as NUL-terminated
// copies, mlx_optional_* as their packed 8-byte form, and keeps every Go
// pointer alive across the call. Functions whose arguments are all integer
// class go through ccall (purego.SyscallN, no reflection); those taking float or
// double go through a function registered with purego.RegisterFunc, which
// places floats in their registers. It also emits the symbol table and the
// binder that fills it, reporting required symbols that are missing.
//
//	go run ./internal/mkbind                    # writes zbind.go from capi/mlxc.h
//	go run ./internal/mkbind -signatures H...   # prints the ABI signature of each function in headers H
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"os"
	"sort"
	"strings"
)

func main() {
	header := flag.String("header", "capi/mlxc.h", "the C header declaring every bound function")
	out := flag.String("out", "zbind.go", "the Go file to write (- for standard output)")
	sigs := flag.Bool("signatures", false, "print the ABI signature of every function in the headers given as arguments, sorted, and exit")
	flag.Parse()
	if *sigs {
		if err := printSignatures(flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "mkbind:", err)
			os.Exit(1)
		}
		return
	}
	src, err := os.ReadFile(*header)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkbind:", err)
		os.Exit(1)
	}
	code, err := generate(string(src), *header)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkbind:", err)
		os.Exit(1)
	}
	if *out == "-" {
		os.Stdout.Write(code)
		return
	}
	if err := os.WriteFile(*out, code, 0o666); err != nil {
		fmt.Fprintln(os.Stderr, "mkbind:", err)
		os.Exit(1)
	}
}

func printSignatures(files []string) error {
	var all []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		ds, err := parseHeader(string(src), true)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for _, d := range ds {
			all = append(all, d.signature())
		}
	}
	sort.Strings(all)
	fmt.Println(strings.Join(all, "\n"))
	return nil
}

var handles = map[string]bool{
	"mlx_array": true, "mlx_string": true, "mlx_stream": true, "mlx_device": true,
	"mlx_vector_array": true, "mlx_map_string_to_array": true, "mlx_map_string_to_string": true,
	"mlx_map_string_to_array_iterator": true, "mlx_map_string_to_string_iterator": true,
	"mlx_distributed_group": true,
}

// scalar is the Go type of a C value passed by value; ok is false for a
// type the generator does not know, which is an error (never a guess).
func scalar(base string) (goType string, ok bool) {
	switch {
	case handles[base]:
		return "uintptr", true
	}
	switch base {
	case "int", "mlx_dtype", "mlx_device_type":
		return "int32", true
	case "bool":
		return "bool", true
	case "size_t":
		return "uintptr", true
	case "uint64_t":
		return "uint64", true
	case "float":
		return "float32", true
	case "double":
		return "float64", true
	case "mlx_optional_int", "mlx_optional_float", "mlx_optional_dtype":
		return "uint64", true // {4-byte value; bool}: one integer register
	case "mlx_error_handler_func":
		return "uintptr", true
	}
	return "", false
}

var goKeywords = map[string]bool{
	"type": true, "func": true, "map": true, "range": true, "var": true, "len": true,
	"string": true, "go": true, "select": true, "chan": true, "default": true,
}

func goName(c string) string {
	if goKeywords[c] {
		return c + "_"
	}
	return c
}

// arg is one Go parameter of a generated function and how it reaches C.
type arg struct {
	name    string   // Go parameter name
	goType  string   // in the generated function's signature
	words   []string // expressions passed to SyscallN, one per C argument
	regs    []string // expressions passed to the registered function
	regType []string // the registered function's parameter types
	pre     string   // a statement to run before the call
	keep    string   // a value to keep alive across the call
}

func lower(d decl) ([]arg, error) {
	var out []arg
	ps := d.Params
	for i := 0; i < len(ps); i++ {
		p := ps[i]
		n := goName(p.Name)
		t := p.Type
		switch {
		case t.FuncPtr:
			out = append(out, arg{name: n, goType: "uintptr", words: []string{n}, regs: []string{n}, regType: []string{"uintptr"}})
		case t.Ptr == 0:
			g, ok := scalar(t.Base)
			if !ok {
				return nil, fmt.Errorf("%s: parameter %s: unknown type %s", d.Name, p.Name, t)
			}
			w := "uintptr(" + n + ")"
			switch g {
			case "uintptr":
				w = n
			case "bool":
				w = "boolWord(" + n + ")"
			case "float32", "float64":
				w = ""
			}
			out = append(out, arg{name: n, goType: g, words: []string{w}, regs: []string{n}, regType: []string{g}})
		case t.Ptr == 1 && t.Const && t.Base == "char":
			cs := n + "C"
			out = append(out, arg{name: n, goType: "string",
				pre:   cs + " := cString(" + n + ")",
				words: []string{"uintptr(unsafe.Pointer(unsafe.SliceData(" + cs + ")))"},
				regs:  []string{"unsafe.SliceData(" + cs + ")"}, regType: []string{"*byte"},
				keep: cs})
		case t.Ptr == 1 && t.Const && t.Base == "void":
			out = append(out, arg{name: n, goType: "unsafe.Pointer", words: []string{"uintptr(" + n + ")"},
				regs: []string{n}, regType: []string{"unsafe.Pointer"}, keep: n})
		case t.Ptr == 1 && !t.Const && t.Base == "void":
			// Opaque C-side pointers (external data, payloads): the caller
			// owns their lifetime.
			out = append(out, arg{name: n, goType: "uintptr", words: []string{n}, regs: []string{n}, regType: []string{"uintptr"}})
		case t.Ptr == 1 && t.Const && i+1 < len(ps) && ps[i+1].Type.Ptr == 0 &&
			(ps[i+1].Type.Base == "size_t" || ps[i+1].Type.Base == "int"):
			elem, ok := map[string]string{"int": "int32", "mlx_array": "uintptr", "int64_t": "int64", "float": "float32"}[t.Base]
			if !ok {
				return nil, fmt.Errorf("%s: parameter %s: no slice lowering for %s", d.Name, p.Name, t)
			}
			lenType, _ := scalar(ps[i+1].Type.Base)
			ptr := "unsafe.Pointer(unsafe.SliceData(" + n + "))"
			out = append(out, arg{name: n, goType: "[]" + elem,
				words:   []string{"uintptr(" + ptr + ")", "uintptr(len(" + n + "))"},
				regs:    []string{ptr, lenType + "(len(" + n + "))"},
				regType: []string{"unsafe.Pointer", lenType}, keep: n})
			i++
		case t.Ptr >= 1 && !t.Const || t.Ptr == 2:
			// A result slot C writes through: a handle, a size, a flag,
			// or (const char**) a pointer into C memory.
			elem := "uintptr"
			if t.Ptr == 1 {
				g, ok := scalar(t.Base)
				if !ok {
					return nil, fmt.Errorf("%s: parameter %s: unknown result type %s", d.Name, p.Name, t)
				}
				elem = g
			}
			out = append(out, arg{name: n, goType: "*" + elem,
				words: []string{"uintptr(unsafe.Pointer(" + n + "))"},
				regs:  []string{n}, regType: []string{"*" + elem}, keep: n})
		default:
			return nil, fmt.Errorf("%s: parameter %s: no lowering for %s", d.Name, p.Name, t)
		}
	}
	return out, nil
}

// result returns the Go result type ("" for void) and how to convert
// ccall's result to it.
func result(d decl) (goType, conv string, err error) {
	t := d.Ret
	switch {
	case t.Ptr > 0:
		return "uintptr", "r", nil // C memory: never a Go pointer
	case t.Base == "void":
		return "", "", nil
	}
	g, ok := scalar(t.Base)
	if !ok {
		return "", "", fmt.Errorf("%s: unknown result type %s", d.Name, t)
	}
	switch g {
	case "int32":
		return g, "int32(r)", nil
	case "bool":
		return g, "byte(r) != 0", nil
	case "uintptr":
		return g, "r", nil
	}
	return "", "", fmt.Errorf("%s: result type %s is not supported", d.Name, t)
}

func usesFloat(args []arg) bool {
	for _, a := range args {
		if a.goType == "float32" || a.goType == "float64" {
			return true
		}
	}
	return false
}

func generate(src, headerName string) ([]byte, error) {
	decls, err := parseHeader(src, false)
	if err != nil {
		return nil, err
	}
	if len(decls) == 0 {
		return nil, fmt.Errorf("no function declarations in %s", headerName)
	}
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("// Code generated by mkbind from %s; DO NOT EDIT.\n\n", headerName)
	p("package mlx\n\nimport (\n\t\"runtime\"\n\t\"unsafe\"\n\n\t\"github.com/ebitengine/purego\"\n)\n\n")
	p("var _ = runtime.KeepAlive\n\n")

	p("// symbolTable holds the address of every function of %s, zero for an\n// optional one the loaded library lacks.\n", headerName)
	p("type symbolTable struct {\n")
	for _, d := range decls {
		if strings.HasSuffix(d.Name, "__v06") {
			continue
		}
		p("\t%s uintptr\n", d.Symbol)
	}
	p("}\n\n")

	p("// registered holds the functions called through purego.RegisterFunc:\n// those with float arguments, which SyscallN cannot place.\n")
	p("var registered struct {\n")
	var regDecls []decl
	lowered := map[string][]arg{}
	for _, d := range decls {
		args, err := lower(d)
		if err != nil {
			return nil, err
		}
		lowered[d.Name] = args
		if usesFloat(args) {
			rt, _, err := result(d)
			if err != nil {
				return nil, err
			}
			var ts []string
			for _, a := range args {
				ts = append(ts, a.regType...)
			}
			p("\t%s func(%s) %s\n", d.Name, strings.Join(ts, ", "), rt)
			regDecls = append(regDecls, d)
		}
	}
	p("}\n\n")

	p("// bindSymbols looks every function up in the library opened as h, fills\n")
	p("// sym and returns the required ones that are missing.\n")
	p("func bindSymbols(h uintptr, sym *symbolTable) (missing []string) {\n")
	p("\tlook := func(name string, optional bool) uintptr {\n")
	p("\t\taddr, err := purego.Dlsym(h, name)\n\t\tif err != nil || addr == 0 {\n\t\t\tif !optional {\n\t\t\t\tmissing = append(missing, name)\n\t\t\t}\n\t\t\treturn 0\n\t\t}\n\t\treturn addr\n\t}\n")
	for _, d := range decls {
		if strings.HasSuffix(d.Name, "__v06") {
			continue
		}
		p("\tsym.%s = look(%q, %v)\n", d.Symbol, d.Symbol, d.Optional || strings.HasPrefix(d.Symbol, "_"))
	}
	p("\tif len(missing) > 0 {\n\t\treturn missing\n\t}\n")
	for _, d := range regDecls {
		p("\tif sym.%s != 0 {\n\t\tpurego.RegisterFunc(&registered.%s, sym.%s)\n\t}\n", d.Symbol, d.Name, d.Symbol)
	}
	p("\treturn nil\n}\n")

	for _, d := range decls {
		args := lowered[d.Name]
		rt, conv, err := result(d)
		if err != nil {
			return nil, err
		}
		var params []string
		for _, a := range args {
			params = append(params, a.name+" "+a.goType)
		}
		p("\n// %s calls C's %s.\n", d.Name, d.signature())
		p("func %s(%s) %s {\n", d.Name, strings.Join(params, ", "), rt)
		if d.Optional || strings.HasPrefix(d.Symbol, "_") {
			if rt == "int32" {
				p("\tif sym.%s == 0 {\n\t\treturn missingSymbol(%q)\n\t}\n", d.Symbol, d.Symbol)
			} else {
				p("\tif sym.%s == 0 {\n\t\tpanic(\"mlx: \" + lib.path + \" has no %s\")\n\t}\n", d.Symbol, d.Symbol)
			}
		}
		for _, a := range args {
			if a.pre != "" {
				p("\t%s\n", a.pre)
			}
		}
		if usesFloat(args) {
			var regs []string
			for _, a := range args {
				regs = append(regs, a.regs...)
			}
			call := fmt.Sprintf("registered.%s(%s)", d.Name, strings.Join(regs, ", "))
			if rt == "" {
				p("\t%s\n", call)
			} else {
				p("\tret_ := %s\n", call)
			}
			keepAlive(p, args)
			if rt != "" {
				p("\treturn ret_\n")
			}
		} else {
			words := []string{"sym." + d.Symbol}
			for _, a := range args {
				words = append(words, a.words...)
			}
			lhs := "r :="
			if rt == "" {
				lhs = ""
			}
			p("\t%s ccall(%s)\n", lhs, strings.Join(words, ", "))
			keepAlive(p, args)
			if rt != "" {
				p("\treturn %s\n", conv)
			}
		}
		p("}\n")
	}
	code, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("formatting the generated code: %w\n%s", err, b.Bytes())
	}
	return code, nil
}

func keepAlive(p func(string, ...any), args []arg) {
	for _, a := range args {
		if a.keep != "" {
			p("\truntime.KeepAlive(%s)\n", a.keep)
		}
	}
}
