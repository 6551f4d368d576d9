package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// mlxFree are the packages and commands that must build without MLX: no
// purego (which loads libmlxc), no mlx bindings, no MLX-needing jaccl.
var mlxFree = []string{
	"./examples/launch",
	"./examples/reshard",
	"./examples/tbnet",
	"./examples/inspect",
	"./examples/mkcheckpoint",
	"./examples/tokenize",
	"./loader/shard",
	"./safetensors",
	"./memguard",
	"./jaccl/cluster",
	"./netcfg",
	"./tokenizer",
}

func TestCommandsWithoutMLXDoNotLinkIt(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	forbidden := func(pkg string) bool {
		return strings.HasPrefix(pkg, "github.com/ebitengine/purego") ||
			pkg == "github.com/mlxdist/mlxdist/mlx" ||
			pkg == "github.com/mlxdist/mlxdist/jaccl" ||
			pkg == "github.com/mlxdist/mlxdist/loader"
	}
	for _, p := range mlxFree {
		cmd := exec.Command(goBin, "list", "-deps", p)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", p, err, out)
		}
		var bad []string
		for _, dep := range strings.Fields(string(out)) {
			if forbidden(dep) {
				bad = append(bad, dep)
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s links %s; it must build without MLX", p, strings.Join(bad, ", "))
		}
	}
}
