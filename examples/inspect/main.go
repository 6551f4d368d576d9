// Command inspect lists the tensors of a safetensors file or checkpoint
// directory: one line per tensor, sorted by name, with its dtype, shape,
// size in bytes and the SHA-256 of its bytes, then a totals line.
//
//	inspect model.safetensors
//	inspect --json ~/models/Kimi-K2.5
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/safetensors"
)

type tensorLine struct {
	Name   string  `json:"name"`
	Dtype  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	Bytes  int64   `json:"bytes"`
	SHA256 string  `json:"sha256"`
	File   string  `json:"file"`
}

type report struct {
	Tensors []tensorLine `json:"tensors"`
	Totals  struct {
		Tensors int   `json:"tensors"`
		Bytes   int64 `json:"bytes"`
		Files   int   `json:"files"`
	} `json:"totals"`
}

func main() {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the listing as one JSON object")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: inspect [--json] PATH

Lists the tensors of a safetensors file or checkpoint directory (with or
without model.safetensors.index.json): NAME DTYPE [D0,D1,...] NBYTES SHA256,
sorted by name, then a totals line. Every byte of every tensor is read.

example:
  inspect --json ./Qwen3-0.6B

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return
		}
		os.Exit(2)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	if err := run(os.Stdout, fs.Arg(0), *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "inspect:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, path string, asJSON bool) error {
	ckpt, err := safetensors.OpenDir(path)
	if err != nil {
		return err
	}
	defer ckpt.Close()
	var r report
	r.Tensors = make([]tensorLine, 0, ckpt.Len())
	for _, t := range ckpt.Tensors() {
		_, f, _ := ckpt.Tensor(t.Name)
		sum, err := hashTensor(f, t.Name)
		if err != nil {
			return err
		}
		r.Tensors = append(r.Tensors, tensorLine{t.Name, t.Dtype.String(), t.Shape, t.Size(), sum, t.File})
	}
	r.Totals.Tensors = ckpt.Len()
	r.Totals.Bytes = ckpt.TotalBytes()
	r.Totals.Files = len(ckpt.Files())
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	for _, t := range r.Tensors {
		dims := make([]string, len(t.Shape))
		for i, d := range t.Shape {
			dims[i] = strconv.FormatInt(d, 10)
		}
		if _, err := fmt.Fprintf(w, "%s %s [%s] %d %s\n", t.Name, t.Dtype, strings.Join(dims, ","), t.Bytes, t.SHA256); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(w, "total: %d tensors, %d bytes (%s), %d files\n",
		r.Totals.Tensors, r.Totals.Bytes, units.FormatGB(r.Totals.Bytes), r.Totals.Files)
	return err
}

// hashTensor returns the SHA-256 of a tensor's bytes, read from the mapping
// under Protect: a file truncated while it is read is an error naming it,
// not a crash.
func hashTensor(f *safetensors.File, name string) (string, error) {
	var sum [sha256.Size]byte
	err := f.Protect(func() error {
		data, err := f.Data(name)
		if err != nil {
			return err
		}
		sum = sha256.Sum256(data)
		return nil
	})
	if err != nil {
		return "", err
	}
	// The pages were only needed for the hash: let them go so that
	// inspecting a checkpoint larger than memory stays small.
	if err := f.ReleaseTensor(name); err != nil {
		return "", err
	}
	return hex.EncodeToString(sum[:]), nil
}
