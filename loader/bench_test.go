package loader

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkDirect compares mmap and pread reads for the Direct strategy on
// a 150 MB checkpoint (warm page cache), rank 0 of 2 and of 1.
func BenchmarkDirect(b *testing.B) {
	requireMLX(b)
	dir := llamaLike(9, 1024, 4096, 4, 8192).write(b, 3)
	for _, n := range []int{1, 2} {
		for _, mode := range []ReadMode{ReadMmap, ReadPread} {
			b.Run(fmt.Sprintf("%s/ranks=%d", mode, n), func(b *testing.B) {
				o := bigGuard(b)
				o.WorldSize, o.Read, o.Rules = n, mode, LlamaRules(8, 4)
				l, err := Open(dir, o)
				require.NoError(b, err)
				defer l.Close()
				b.SetBytes(l.Plan().Read)
				for b.Loop() {
					all, err := l.LoadAll(context.Background())
					require.NoError(b, err)
					for _, a := range all {
						a.Free()
					}
				}
			})
		}
	}
}
