package safetensors

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

// cachedPages reports how many pages of the file mapping's [off, off+n)
// are in the page cache, of how many.
func cachedPages(t *testing.T, m []byte, off, n int64) (cached, pages int) {
	t.Helper()
	return testenv.ResidentPages(t, m[off:off+n])
}

func TestWillNeedHasTheOSReadATensorAhead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	require.NoError(t, WriteFile(path, []TensorData{
		{Name: "a", Dtype: U8, Shape: []int64{int64(len(data))}, Data: data},
		{Name: "b", Dtype: U8, Shape: []int64{int64(len(data))}, Data: data},
	}, nil))
	testenv.DropFromPageCache(t, path)

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	if !f.Mapped() {
		t.Skip("the file is not mapped")
	}
	ta, _ := f.Tensor("a")
	tb, _ := f.Tensor("b")
	if c, p := cachedPages(t, f.data, ta.Offset, ta.Size()); c > p/4 {
		t.Skipf("%d of %d pages still cached after FADV_DONTNEED: the check below would prove nothing", c, p)
	}
	require.NoError(t, f.WillNeed("a"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, p := cachedPages(t, f.data, ta.Offset, ta.Size())
		if c == p {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pages of the tensor cached 10 s after WillNeed", c, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Only the tensor named was read ahead, and nothing was counted read.
	cb, pb := cachedPages(t, f.data, tb.Offset+(1<<20), tb.Size()-(1<<20))
	assert.Less(t, cb, pb/2, "pages of the other tensor read ahead")
	assert.Zero(t, f.BytesRead())
	assert.ErrorContains(t, f.WillNeed("c"), `"c"`)
}
