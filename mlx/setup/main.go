// Command setup installs MLX for a Go program that imports
// github.com/mlxdist/mlxdist: run it once, and package mlx finds MLX with
// nothing to set.
//
//	go run github.com/mlxdist/mlxdist/mlx/setup@latest
//	go run github.com/mlxdist/mlxdist/mlx/setup --backend cuda   # Linux with NVIDIA GPUs
//
// Or, with a tool directive in your go.mod (`go get -tool
// github.com/mlxdist/mlxdist/mlx/setup`), `go tool setup`.
//
// It installs the pip MLX release this module pins (mlx.PinnedVersion:
// mlx-metal on macOS, mlx-cpu on Linux, mlx-cuda-13 with --backend cuda)
// into a private Python environment under the user's cache directory,
// os.UserCacheDir()/mlxdist/<MLX version>/ ($MLXDIST_CACHE_DIR replaces
// os.UserCacheDir()/mlxdist), compiles the module's own C ABI library
// (mlx/capi, embedded in package mlx) against it there, and prints what it
// did and where. It needs Python ≥ 3.10, a C++20 compiler and CMake ≥ 3.24,
// and says how to get whichever is missing.
//
// It is idempotent: when the installation is complete and current it does
// nothing. An installation that was interrupted (it has no manifest yet) or
// whose files changed since is rebuilt, and package mlx never loads it.
//
// In a checkout of the repository, `make setup` runs this command with
// --dir build --venv .venv, so the development library is built the same
// way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/mlxdist/mlxdist/mlx"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opt options
	fs.StringVar(&opt.Backend, "backend", "auto", "MLX back-end: auto (metal on macOS, cpu on Linux), cpu, metal or cuda")
	fs.StringVar(&opt.Dir, "dir", "", "install here instead of the user cache directory (package mlx then needs MLX_C_LIBRARY)")
	fs.StringVar(&opt.Venv, "venv", "", "use or create this Python environment instead of DIR/venv")
	fs.StringVar(&opt.Python, "python", "", "the Python ≥ 3.10 that creates the environment (default: the newest python3.x on PATH)")
	fs.IntVar(&opt.Jobs, "j", runtime.NumCPU(), "parallel compile jobs")
	fs.BoolVar(&opt.Force, "force", false, "rebuild even when the installation is complete")
	printVersion := fs.Bool("mlx-version", false, "print the pinned MLX version and exit")
	printDir := fs.Bool("print-dir", false, "print the installation directory and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: go run %s[@version] [flags]

Installs pip MLX %s and builds the C ABI library package mlx loads, in
the user cache directory (%s overrides it). Run again at no cost.

flags:
`, mlx.SetupPackage, mlx.PinnedVersion, mlx.EnvCacheDir)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "setup: unexpected argument %q (see -help)\n", fs.Arg(0))
		return 2
	}
	if *printVersion {
		fmt.Fprintln(stdout, mlx.PinnedVersion)
		return 0
	}
	if opt.Dir == "" {
		dir, err := mlx.CacheDir()
		if err != nil {
			fmt.Fprintln(stderr, "setup:", err)
			return 1
		}
		opt.Dir = dir
		opt.Cache = true
	}
	if *printDir {
		fmt.Fprintln(stdout, opt.Dir)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := setup(ctx, opt, stdout); err != nil {
		fmt.Fprintln(stderr, "setup:", err)
		return 1
	}
	return 0
}
