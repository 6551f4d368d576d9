package tokenizer

import (
	"bytes"
	"encoding/json"
	"go/format"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

func TestNFCTablesAreCurrent(t *testing.T) {
	out := filepath.Join(t.TempDir(), "znfc.go")
	script, err := filepath.Abs("gen_nfc.py")
	require.NoError(t, err)
	testenv.RunPython(t, "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')", script, out)
	fresh, err := os.ReadFile(out)
	require.NoError(t, err)
	fresh, err = format.Source(fresh)
	require.NoError(t, err)
	have, err := os.ReadFile("znfc.go")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(fresh, have), "znfc.go is stale: run go generate ./tokenizer")
}

func TestNFCMatchesPython(t *testing.T) {
	texts := corpus(3, 2000, nil)
	texts = append(texts, "e\u0301", "\u1100\u1161\u11a8", "a\u0323\u0302", "\u0341", "\u212b", "\u00c5\u0301",
		"q\u0307\u0323", "\u0344", "\u0f73", "가\u11a8", "\u0300a\u0300", "\U0001d15e")
	b, err := json.Marshal(texts)
	require.NoError(t, err)
	in := filepath.Join(t.TempDir(), "texts.json")
	require.NoError(t, os.WriteFile(in, b, 0o644))
	out := testenv.RunPython(t, `
import json, sys, unicodedata
print(json.dumps([unicodedata.normalize("NFC", s) for s in json.load(open(sys.argv[1]))]))
`, in)
	var want []string
	require.NoError(t, json.Unmarshal(out, &want))
	buildClassTable()
	for i, s := range texts {
		assert.Equal(t, want[i], nfc(s), "NFC(%+q)", s)
	}
}
