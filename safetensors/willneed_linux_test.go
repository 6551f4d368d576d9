package safetensors

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// cachedPages reports how many pages of the file mapping's [off, off+n)
// are in the page cache.
func cachedPages(t *testing.T, m []byte, off, n int64) (cached, pages int) {
	t.Helper()
	r := pageAlign(m, off, n)
	require.NotNil(t, r)
	vec := make([]byte, (len(r)+os.Getpagesize()-1)/os.Getpagesize())
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(r))), uintptr(len(r)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	require.Zero(t, errno)
	for _, v := range vec {
		if v&1 != 0 {
			cached++
		}
	}
	return cached, len(vec)
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
	// Out of the page cache: written back, then dropped.
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	require.NoError(t, err)
	require.NoError(t, unix.Fdatasync(fd))
	require.NoError(t, unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED))
	unix.Close(fd)

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
