package main

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const header = "../../capi/mlxc.h"

func TestTheGeneratedBindingsAreCurrent(t *testing.T) {
	src, err := os.ReadFile(header)
	require.NoError(t, err)
	want, err := generate(string(src), "capi/mlxc.h")
	require.NoError(t, err)
	got, err := os.ReadFile("../../zbind.go")
	require.NoError(t, err)
	if string(got) != string(want) {
		t.Fatal("mlx/zbind.go is stale: run `go generate ./mlx/...` and commit the result")
	}
}

// mlxcSignatures reads capi/testdata/mlx-c-signatures.txt: section name ->
// function name -> signature.
func mlxcSignatures(t *testing.T) map[string]map[string]string {
	f, err := os.Open("../../capi/testdata/mlx-c-signatures.txt")
	require.NoError(t, err)
	defer f.Close()
	out := map[string]map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			out[section] = map[string]string{}
		default:
			open := strings.Index(line, "(")
			fields := strings.Fields(line[:open])
			out[section][fields[len(fields)-1]] = line
		}
	}
	require.NoError(t, sc.Err())
	return out
}

func TestEveryDeclarationHasMLXCsNameAndSignature(t *testing.T) {
	src, err := os.ReadFile(header)
	require.NoError(t, err)
	decls, err := parseHeader(string(src), false)
	require.NoError(t, err)
	official := mlxcSignatures(t)
	require.NotEmpty(t, official["main"])
	require.NotEmpty(t, official["v0.6.0"])
	checked := 0
	for _, d := range decls {
		if strings.HasPrefix(d.Symbol, "_") {
			continue // this library's private extensions: not in mlx-c
		}
		section := "main"
		if strings.HasSuffix(d.Name, "__v06") {
			section = "v0.6.0"
		}
		want, ok := official[section][d.Symbol]
		if !assert.Truef(t, ok, "%s is not an mlx-c %s function", d.Symbol, section) {
			continue
		}
		assert.Equalf(t, want, d.signature(), "%s differs from mlx-c %s", d.Name, section)
		checked++
	}
	assert.Greater(t, checked, 150)
}

func TestTheParserReadsEveryShapeOfDeclarationAndRejectsWhatItCannotBind(t *testing.T) {
	ds, err := parseHeader(`
/* a comment with int fake(int x); inside */
#define MACRO(x) \
  int macro_body(int y);
typedef struct opt_ { int value; bool has_value; } opt;
typedef void (*handler)(const char* msg, void* data);
MLXC_OPTIONAL int f(mlx_array* res, const int* shape, size_t shape_num, float eps, const mlx_stream s);
const char* g(void);
void h(handler fn, void* data, void (*dtor)(void*));
`, false)
	require.NoError(t, err)
	require.Len(t, ds, 3)
	assert.True(t, ds[0].Optional)
	assert.Equal(t, "int f(mlx_array*, const int*, size_t, float, mlx_stream)", ds[0].signature())
	assert.Equal(t, "const char* g()", ds[1].signature())
	assert.Equal(t, "void h(handler, void*, funcptr)", ds[2].signature())

	args, err := lower(ds[0])
	require.NoError(t, err)
	var types []string
	for _, a := range args {
		types = append(types, a.goType)
	}
	assert.Equal(t, []string{"*uintptr", "[]int32", "float32", "uintptr"}, types, "shape and its length become one slice")
	assert.True(t, usesFloat(args), "a float argument needs a registered function")

	_, err = parseHeader(`int v(const char* fmt, ...);`, false)
	assert.ErrorContains(t, err, "variadic")
	ds, err = parseHeader(`int v(const char* fmt, ...);`, true)
	require.NoError(t, err)
	assert.Empty(t, ds)

	ds, err = parseHeader(`int w(struct_nobody_knows x);`, false)
	require.NoError(t, err)
	_, err = lower(ds[0])
	assert.ErrorContains(t, err, "unknown type", "an unknown type is an error, never a guess")

	_, err = generate(`int dup(void); int dup(void);`, "x.h")
	assert.ErrorContains(t, err, "declared twice")
}
