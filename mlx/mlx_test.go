package mlx_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

// requireMLX loads MLX or skips (fails under MLX_REQUIRED=1).
func requireMLX(t testing.TB) {
	t.Helper()
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX is not loadable: %v", err)
	}
}

func randFloats(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// ok unwraps a (value, error) pair, failing the test on error:
// ok(mlx.Version())(t).
func ok[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

func arr(t testing.TB, data []float32, shape ...int) *mlx.Array {
	t.Helper()
	a := ok(mlx.FromSlice(data, shape...))(t)
	t.Cleanup(a.Free)
	return a
}

func floats(t testing.TB, a *mlx.Array) []float32 {
	t.Helper()
	t.Cleanup(a.Free)
	return ok(mlx.ToSlice[float32](a))(t)
}

func assertClose(t testing.TB, want, got []float32, tol float64) {
	t.Helper()
	require.Equal(t, len(want), len(got), "length")
	for i := range want {
		if d := math.Abs(float64(want[i] - got[i])); d > tol*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("element %d: want %v, got %v (diff %g)", i, want[i], got[i], d)
		}
	}
}

func TestVersionIsThePinnedPipMLX(t *testing.T) {
	requireMLX(t)
	v := ok(mlx.Version())(t)
	py := strings.TrimSpace(string(testenv.RunPython(t, "import mlx.core as mx; print(mx.__version__)")))
	assert.Equal(t, py, v, "the C ABI library must run the same MLX as the venv")
	abi := ok(mlx.LoadedABI())(t)
	t.Logf("MLX %s via %s (%s)", v, mlx.Path(), abi)
}

func TestEveryElementTypeRoundTrips(t *testing.T) {
	requireMLX(t)
	r := rand.New(rand.NewPCG(1, 2))
	check := func(t *testing.T, name string, f func() error) {
		t.Run(name, func(t *testing.T) { require.NoError(t, f()) })
	}
	check(t, "bool", func() error { return rt(t, []bool{true, false, true, true}, mlx.Bool) })
	check(t, "uint8", func() error { return rt(t, randInts[uint8](r, 37), mlx.Uint8) })
	check(t, "uint16", func() error { return rt(t, randInts[uint16](r, 37), mlx.Uint16) })
	check(t, "uint32", func() error { return rt(t, randInts[uint32](r, 37), mlx.Uint32) })
	check(t, "uint64", func() error { return rt(t, randInts[uint64](r, 37), mlx.Uint64) })
	check(t, "int8", func() error { return rt(t, randInts[int8](r, 37), mlx.Int8) })
	check(t, "int16", func() error { return rt(t, randInts[int16](r, 37), mlx.Int16) })
	check(t, "int32", func() error { return rt(t, randInts[int32](r, 37), mlx.Int32) })
	check(t, "int64", func() error { return rt(t, randInts[int64](r, 37), mlx.Int64) })
	check(t, "float32", func() error { return rt(t, randFloats(3, 37), mlx.Float32) })
	check(t, "float64", func() error {
		v := make([]float64, 37)
		for i := range v {
			v[i] = r.NormFloat64()
		}
		return rt(t, v, mlx.Float64)
	})
	check(t, "complex64", func() error {
		v := make([]complex64, 37)
		for i := range v {
			v[i] = complex(float32(r.NormFloat64()), float32(r.NormFloat64()))
		}
		return rt(t, v, mlx.Complex64)
	})
	for _, dt := range []mlx.Dtype{mlx.Float16, mlx.Bfloat16} {
		t.Run(dt.String()+" as raw words", func(t *testing.T) {
			words := randInts[uint16](r, 64)
			for i := range words {
				words[i] &^= 0x7c00 // keep exponents finite for float16
			}
			b := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*2)
			a := ok(mlx.NewArrayBytes(b, []int{8, 8}, dt))(t)
			defer a.Free()
			assert.Equal(t, dt, a.Dtype())
			got := ok(mlx.ToSlice[uint16](a))(t)
			assert.Equal(t, words, got)
			raw := ok(a.Bytes())(t)
			assert.Equal(t, b, raw)
		})
	}
}

func randInts[T uint8 | uint16 | uint32 | uint64 | int8 | int16 | int32 | int64](r *rand.Rand, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = T(r.Uint64())
	}
	return out
}

func rt[T mlx.Element](t *testing.T, data []T, dt mlx.Dtype) error {
	a, err := mlx.FromSlice(data, len(data))
	if err != nil {
		return err
	}
	defer a.Free()
	in := ok(a.Info())(t)
	assert.Equal(t, dt, in.Dtype)
	assert.Equal(t, []int{len(data)}, in.Shape)
	assert.Equal(t, len(data), in.Size)
	assert.Equal(t, len(data)*dt.Size(), in.Nbytes)
	got, err := mlx.ToSlice[T](a)
	if err != nil {
		return err
	}
	assert.Equal(t, data, got)
	return nil
}

func TestReadingAnArrayAsTheWrongTypeIsAnError(t *testing.T) {
	requireMLX(t)
	a := arr(t, []float32{1, 2})
	_, err := mlx.ToSlice[int32](a)
	assert.ErrorContains(t, err, "float32 read as int32")
}

func TestShapeAndDataMismatchIsRejectedBeforeMLX(t *testing.T) {
	requireMLX(t)
	_, err := mlx.FromSlice([]float32{1, 2, 3}, 2, 2)
	assert.ErrorIs(t, err, mlx.ErrShape)
	_, err = mlx.NewArrayBytes(make([]byte, 4), []int{-1}, mlx.Uint8)
	assert.ErrorIs(t, err, mlx.ErrShape)
}

func TestMatmulMatchesGo(t *testing.T) {
	requireMLX(t)
	const m, k, n = 7, 33, 5
	a, b := randFloats(10, m*k), randFloats(11, k*n)
	want := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a[i*k+p]) * float64(b[p*n+j])
			}
			want[i*n+j] = float32(s)
		}
	}
	c := ok(mlx.Matmul(arr(t, a, m, k), arr(t, b, k, n)))(t)
	assert.Equal(t, []int{m, n}, c.Shape())
	// On a GPU MLX multiplies float32 in TF32 unless MLX_ENABLE_TF32=0 (CUDA
	// does, and so do recent Apple GPUs): about 1e-3 off here, while a wrong
	// operand order or layout is off by more than 0.1.
	tol := 1e-4
	if ok(mlx.DefaultDevice())(t) == mlx.GPU && os.Getenv("MLX_ENABLE_TF32") != "0" {
		tol = 5e-3
	}
	assertClose(t, want, floats(t, c), tol)
}

func TestElementwiseOpsAndSumMatchGo(t *testing.T) {
	requireMLX(t)
	x, y := randFloats(20, 24), randFloats(21, 24)
	sum, prod := make([]float32, 24), make([]float32, 24)
	for i := range x {
		sum[i], prod[i] = x[i]+y[i], x[i]*y[i]
	}
	ax, ay := arr(t, x, 2, 3, 4), arr(t, y, 2, 3, 4)
	assertClose(t, sum, floats(t, ok(mlx.Add(ax, ay))(t)), 1e-6)
	assertClose(t, prod, floats(t, ok(mlx.Multiply(ax, ay))(t)), 1e-6)

	// Sum over axis 1 of [2,3,4] gives [2,4].
	want := make([]float32, 8)
	for i := 0; i < 2; i++ {
		for j := 0; j < 3; j++ {
			for k := 0; k < 4; k++ {
				want[i*4+k] += x[i*12+j*4+k]
			}
		}
	}
	s := ok(mlx.Sum(ax, false, 1))(t)
	assert.Equal(t, []int{2, 4}, s.Shape())
	assertClose(t, want, floats(t, s), 1e-5)
	var total float32
	for _, v := range x {
		total += v
	}
	assertClose(t, []float32{total}, floats(t, ok(mlx.Sum(ax, false))(t)), 1e-5)
}

func TestSliceSplitConcatenateReshapeTransposeMatchGo(t *testing.T) {
	requireMLX(t)
	x := randFloats(30, 6*8)
	a := arr(t, x, 6, 8)

	// a[1:5:2, 2:8:3]
	sl := ok(mlx.Slice(a, []int{1, 2}, []int{5, 8}, []int{2, 3}))(t)
	var want []float32
	for i := 1; i < 5; i += 2 {
		for j := 2; j < 8; j += 3 {
			want = append(want, x[i*8+j])
		}
	}
	assert.Equal(t, []int{2, 2}, sl.Shape())
	assert.Equal(t, want, floats(t, sl))

	// Split into 4 parts along axis 1, then concatenate them back.
	parts := ok(mlx.Split(a, 4, 1))(t)
	require.Len(t, parts, 4)
	for k, p := range parts {
		var w []float32
		for i := 0; i < 6; i++ {
			w = append(w, x[i*8+2*k:i*8+2*k+2]...)
		}
		assert.Equal(t, w, ok(mlx.ToSlice[float32](p))(t), "part %d", k)
	}
	back := ok(mlx.Concatenate(parts, 1))(t)
	mlx.FreeAll(parts...)
	assert.Equal(t, x, floats(t, back))

	secs := ok(mlx.SplitSections(a, []int{1, 4}, 0))(t)
	require.Len(t, secs, 3)
	assert.Equal(t, []int{3, 8}, secs[1].Shape())
	assert.Equal(t, x[8:32], ok(mlx.ToSlice[float32](secs[1]))(t))
	mlx.FreeAll(secs...)

	r := ok(mlx.Reshape(a, 4, 12))(t)
	assert.Equal(t, []int{4, 12}, r.Shape())
	assert.Equal(t, x, floats(t, r))

	tr := ok(mlx.Transpose(a))(t)
	wantT := make([]float32, 48)
	for i := 0; i < 6; i++ {
		for j := 0; j < 8; j++ {
			wantT[j*6+i] = x[i*8+j]
		}
	}
	c := ok(mlx.Contiguous(tr))(t)
	tr.Free()
	assert.Equal(t, []int{8, 6}, c.Shape())
	assert.Equal(t, wantT, floats(t, c))
}

func TestTakeAsTypeAndViewMatchGo(t *testing.T) {
	requireMLX(t)
	x := randFloats(40, 5*3)
	idx := ok(mlx.FromSlice([]int32{4, 0, 2, 2}))(t)
	defer idx.Free()
	tk := ok(mlx.Take(arr(t, x, 5, 3), idx, 0))(t)
	var want []float32
	for _, i := range []int{4, 0, 2, 2} {
		want = append(want, x[i*3:i*3+3]...)
	}
	assert.Equal(t, want, floats(t, tk))

	// float32 -> bfloat16 rounds to nearest even; the bits are Go's.
	bf := ok(mlx.AsType(arr(t, x, 15), mlx.Bfloat16))(t)
	defer bf.Free()
	words := ok(mlx.ToSlice[uint16](bf))(t)
	for i, v := range x {
		assert.Equal(t, f32ToBF16(v), words[i], "element %d (%v)", i, v)
	}
	// and back, exactly.
	back := ok(mlx.AsType(bf, mlx.Float32))(t)
	for i, v := range floats(t, back) {
		assert.Equal(t, math.Float32frombits(uint32(words[i])<<16), v)
	}

	bits := ok(mlx.View(arr(t, x, 15), mlx.Uint32))(t)
	defer bits.Free()
	got := ok(mlx.ToSlice[uint32](bits))(t)
	for i, v := range x {
		assert.Equal(t, math.Float32bits(v), got[i])
	}
}

func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// unpack4 returns the 4-bit values packed little-end first in uint32 words.
func unpack4(words []uint32, n int) []float32 {
	out := make([]float32, n)
	for j := range out {
		out[j] = float32(words[j/8] >> (4 * (j % 8)) & 0xf)
	}
	return out
}

func TestQuantizeDequantizeAndQuantizedMatmulMatchGo(t *testing.T) {
	requireMLX(t)
	const rows, cols, batch = 6, 128, 3
	q := mlx.Quantization{GroupSize: 64, Bits: 4}
	w := randFloats(50, rows*cols)
	wq, scales, biases, err := mlx.Quantize(arr(t, w, rows, cols), q)
	require.NoError(t, err)
	defer mlx.FreeAll(wq, scales, biases)
	assert.Equal(t, []int{rows, cols * 4 / 32}, wq.Shape())
	assert.Equal(t, []int{rows, cols / 64}, scales.Shape())

	packed := ok(mlx.ToSlice[uint32](wq))(t)
	sc := ok(mlx.ToSlice[float32](scales))(t)
	bi := ok(mlx.ToSlice[float32](biases))(t)
	// The Go reference: w_hat = scale * q + bias per group of 64.
	what := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		qs := unpack4(packed[r*cols/8:(r+1)*cols/8], cols)
		for j := 0; j < cols; j++ {
			g := r*(cols/64) + j/64
			what[r*cols+j] = sc[g]*qs[j] + bi[g]
			// Quantization error stays within one step (MLX shifts the grid so
			// that one edge of the group is exact, which can cost up to a step
			// at the other edge).
			assert.LessOrEqual(t, math.Abs(float64(what[r*cols+j]-w[r*cols+j])), math.Abs(float64(sc[g]))+1e-5)
		}
	}
	dq := ok(mlx.Dequantize(wq, scales, biases, q))(t)
	assertClose(t, what, floats(t, dq), 1e-6)

	x := randFloats(51, batch*cols)
	want := make([]float32, batch*rows)
	for b := 0; b < batch; b++ {
		for r := 0; r < rows; r++ {
			var s float64
			for j := 0; j < cols; j++ {
				s += float64(x[b*cols+j]) * float64(what[r*cols+j])
			}
			want[b*rows+r] = float32(s)
		}
	}
	y := ok(mlx.QuantizedMatmul(arr(t, x, batch, cols), wq, scales, biases, true, q))(t)
	assert.Equal(t, []int{batch, rows}, y.Shape())
	assertClose(t, want, floats(t, y), 1e-3)
}

func TestMismatchedShapesReturnAnErrorNamingThemAndTheProcessGoesOn(t *testing.T) {
	requireMLX(t)
	a := arr(t, randFloats(60, 6), 2, 3)
	b := arr(t, randFloats(61, 20), 4, 5)
	_, err := mlx.Matmul(a, b)
	var me *mlx.Error
	require.ErrorAs(t, err, &me)
	assert.Equal(t, "mlx_matmul", me.Op)
	assert.Contains(t, me.Msg, "(2,3)")
	assert.Contains(t, me.Msg, "(4,5)")
	_, err = mlx.Add(a, b)
	assert.ErrorContains(t, err, "mlx_add")
	_, err = mlx.Split(a, 4, 1)
	assert.ErrorContains(t, err, "mlx_split")
	_, err = mlx.Reshape(a, 7)
	assert.ErrorContains(t, err, "mlx_reshape")
	// And MLX still works afterwards.
	c := ok(mlx.Add(a, a))(t)
	assert.Len(t, floats(t, c), 6)
}

func TestFreeIsIdempotentAndUseAfterFreeIsAnError(t *testing.T) {
	requireMLX(t)
	a := ok(mlx.FromSlice([]float32{1, 2, 3}))(t)
	a.Free()
	a.Free()
	_, err := mlx.ToSlice[float32](a)
	assert.ErrorIs(t, err, mlx.ErrFreed)
	_, err = mlx.Add(a, a)
	assert.ErrorIs(t, err, mlx.ErrFreed)
	var nilArr *mlx.Array
	nilArr.Free()
}

func TestCreateEvalFreeCyclesLeaveActiveMemoryWhereItStarted(t *testing.T) {
	requireMLX(t)
	require.NoError(t, mlx.ClearCache())
	start := ok(mlx.ActiveMemory())(t)
	data := randFloats(70, 1<<18) // 1 MB
	for i := 0; i < 1000; i++ {
		a := ok(mlx.FromSlice(data))(t)
		b := ok(mlx.Add(a, a))(t)
		require.NoError(t, mlx.Eval(b))
		a.Free()
		b.Free()
	}
	end := ok(mlx.ActiveMemory())(t)
	assert.InDelta(t, float64(start), float64(end), 1<<20, "active memory drifted from %d to %d", start, end)
}

func TestArraysDroppedWithoutFreeAreReclaimedByTheCleanup(t *testing.T) {
	requireMLX(t)
	start := ok(mlx.ActiveMemory())(t)
	func() {
		for i := 0; i < 8; i++ {
			a := ok(mlx.FromSlice(make([]float32, 1<<20)))(t)
			_ = a
		}
	}()
	grown := ok(mlx.ActiveMemory())(t)
	_ = grown
	var now int64
	for i := 0; i < 100; i++ {
		runtime.GC()
		// Any call drains the frees the cleanups queued.
		now = ok(mlx.ActiveMemory())(t)
		if now <= start+1<<20 {
			break
		}
		runtime.Gosched()
	}
	assert.LessOrEqual(t, now, start+1<<20, "cleanups did not free the dropped arrays")
}

func TestSixteenGoroutinesUseMLXConcurrently(t *testing.T) {
	requireMLX(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			x := randFloats(uint64(100+g), 64)
			for i := 0; i < 50; i++ {
				a, err := mlx.FromSlice(x, 8, 8)
				if err != nil {
					errs <- err
					return
				}
				b, err := mlx.Multiply(a, a)
				if err != nil {
					errs <- err
					return
				}
				got, err := mlx.ToSlice[float32](b)
				a.Free()
				b.Free()
				if err != nil {
					errs <- err
					return
				}
				for j := range x {
					if got[j] != x[j]*x[j] {
						errs <- errors.New("wrong product")
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExternalMemoryIsReleasedOnceMLXNoLongerNeedsIt(t *testing.T) {
	requireMLX(t)
	data := randFloats(80, 256)
	released := make(chan struct{}, 2)
	a := ok(mlx.NewArrayExternal(unsafe.Pointer(&data[0]), len(data)*4, []int{16, 16}, mlx.Float32, func() {
		released <- struct{}{}
	}))(t)
	got := ok(mlx.ToSlice[float32](a))(t)
	assert.Equal(t, data, got)
	a.Free()
	runtime.KeepAlive(data)
	select {
	case <-released:
	default:
		t.Fatal("release was not called after Free")
	}
	assert.Len(t, released, 0, "release called twice")
}

func TestNewArrayFillWritesInPlace(t *testing.T) {
	requireMLX(t)
	want := randFloats(90, 1000)
	a := ok(mlx.NewArrayFill([]int{10, 100}, mlx.Float32, func(dst []byte) error {
		require.Len(t, dst, 4000)
		copy(dst, unsafe.Slice((*byte)(unsafe.Pointer(&want[0])), 4000))
		return nil
	}))(t)
	assert.Equal(t, want, floats(t, a))

	// MLX's CUDA back-end hands a freed buffer back only once the stream's
	// completion handler has run, so settle the stream before each reading.
	s := mlx.CPUStream()
	if ok(mlx.DefaultDevice())(t) == mlx.GPU {
		s = mlx.GPUStream()
	}
	require.NoError(t, mlx.Synchronize(s))
	start := ok(mlx.ActiveMemory())(t)
	_, err := mlx.NewArrayFill([]int{1 << 20}, mlx.Uint8, func([]byte) error { return errors.New("disk on fire") })
	assert.ErrorContains(t, err, "disk on fire")
	require.NoError(t, mlx.Synchronize(s))
	assert.Equal(t, start, ok(mlx.ActiveMemory())(t), "a failed fill must leave no memory behind")
}

func TestSafetensorsWrittenByMLXFromGoReadInPython(t *testing.T) {
	requireMLX(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "w.safetensors")
	x := randFloats(95, 12)
	a := arr(t, x, 3, 4)
	require.NoError(t, mlx.SaveSafetensors(path, map[string]*mlx.Array{"w": a}, map[string]string{"format": "mlx"}))
	out := testenv.RunPython(t, `
import sys, numpy as np
from safetensors.numpy import load_file
from safetensors import safe_open
t = load_file(sys.argv[1])["w"]
with safe_open(sys.argv[1], "np") as f: print(f.metadata()["format"])
print(t.shape, " ".join(repr(float(v)) for v in t.ravel()))
`, path)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 2)
	assert.Equal(t, "mlx", lines[0])
	require.True(t, strings.HasPrefix(lines[1], "(3, 4) "), lines[1])
	var read []float32
	for _, f := range strings.Fields(strings.TrimPrefix(lines[1], "(3, 4) ")) {
		v, err := strconv.ParseFloat(f, 64)
		require.NoError(t, err)
		read = append(read, float32(v))
	}
	assert.Equal(t, x, read, "Python reads back the values Go wrote")

	arrays, meta, err := mlx.LoadSafetensors(path)
	require.NoError(t, err)
	assert.Equal(t, "mlx", meta["format"])
	require.Contains(t, arrays, "w")
	assert.Equal(t, x, floats(t, arrays["w"]))

	_, _, err = mlx.LoadSafetensors(filepath.Join(dir, "missing.safetensors"))
	assert.ErrorContains(t, err, "missing.safetensors")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.safetensors"), []byte("garbage!"), 0o644))
	_, _, err = mlx.LoadSafetensors(filepath.Join(dir, "bad.safetensors"))
	assert.Error(t, err)
}

func TestDevicesMemoryLimitsAndStreams(t *testing.T) {
	requireMLX(t)
	d := ok(mlx.AvailableDevices())(t)
	assert.True(t, d.CPU)
	if runtime.GOOS == "linux" {
		assert.False(t, d.Metal, "no Metal on Linux")
	}
	t.Logf("devices: %+v backend %s", d, d.Backend())
	dev := ok(mlx.DefaultDevice())(t)
	if d.GPUs == 0 {
		assert.Equal(t, mlx.CPU, dev)
		assert.Error(t, mlx.SetDefaultDevice(mlx.GPU), "no GPU stream without a GPU")
	}
	require.NoError(t, mlx.Synchronize(mlx.CPUStream()))

	prev := ok(mlx.SetCacheLimit(1 << 30))(t)
	back := ok(mlx.SetCacheLimit(prev))(t)
	if v := ok(mlx.Version())(t); !strings.HasPrefix(v, "0.31.") && !strings.HasPrefix(v, "0.30.") {
		// MLX before 0.32 returns 0 from the CPU allocator's setter.
		assert.Equal(t, int64(1<<30), back, "the setter returns the previous limit")
	}
	lim := ok(mlx.MemoryLimit())(t)
	assert.Greater(t, lim, int64(0))

	require.NoError(t, mlx.ResetPeakMemory())
	a := ok(mlx.FromSlice(make([]float32, 1<<20)))(t)
	require.NoError(t, mlx.Eval(a))
	m := ok(mlx.Memory())(t)
	assert.GreaterOrEqual(t, m.Peak, m.Active)
	assert.GreaterOrEqual(t, m.Active, int64(4<<20))
	a.Free()
	require.NoError(t, mlx.ClearCache())
	assert.Equal(t, int64(0), ok(mlx.CacheMemory())(t))
}

func TestNonStrictDistributedInitWithoutALauncherGivesASingletonGroup(t *testing.T) {
	requireMLX(t)
	for _, k := range []string{"MLX_RANK", "MLX_HOSTFILE", "MLX_IBV_DEVICES", "MLX_JACCL_COORDINATOR", "OMPI_COMM_WORLD_SIZE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	avail := ok(mlx.DistributedAvailable("ring"))(t)
	assert.True(t, avail, "the pip wheel ships the ring back-end")
	g := ok(mlx.DistributedInit(false, ""))(t)
	defer g.Free()
	assert.Equal(t, 0, g.Rank())
	assert.Equal(t, 1, g.Size())
	x := arr(t, []float32{1.5, -2})
	s := ok(mlx.AllSum(x, g, mlx.CPUStream()))(t)
	assert.Equal(t, []float32{1.5, -2}, floats(t, s))

	_, err := mlx.DistributedInit(true, "ring")
	assert.Error(t, err, "strict ring with no hostfile must fail, not exit")
}

func TestDistributedInitLeavesSignalHandlingAlone(t *testing.T) {
	requireMLX(t)
	require.False(t, signal.Ignored(syscall.SIGPIPE), "SIGPIPE was ignored before the test")
	g := ok(mlx.DistributedInit(false, ""))(t)
	defer g.Free()
	assert.False(t, signal.Ignored(syscall.SIGPIPE), "DistributedInit changed the process's SIGPIPE handling")
}

func TestDoRunsABurstOfCallsInOneTripAndOthersWait(t *testing.T) {
	requireMLX(t)
	x := randFloats(200, 16)
	var got []float32
	var nested bool
	err := mlx.Do(func() error {
		a, err := mlx.FromSlice(x, 4, 4)
		if err != nil {
			return err
		}
		defer a.Free()
		b, err := mlx.Add(a, a)
		if err != nil {
			return err
		}
		defer b.Free()
		// Do inside Do runs in place.
		if err := mlx.Do(func() error { nested = true; return mlx.Eval(b) }); err != nil {
			return err
		}
		got, err = mlx.ToSlice[float32](b)
		return err
	})
	require.NoError(t, err)
	assert.True(t, nested)
	for i := range x {
		assert.Equal(t, 2*x[i], got[i])
	}

	// Errors inside come back; other goroutines' calls still work around it.
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				err := mlx.Do(func() error {
					a, err := mlx.FromSlice([]float32{1, 2})
					if err != nil {
						return err
					}
					defer a.Free()
					_, err = mlx.Reshape(a, 3)
					return err
				})
				assert.ErrorContains(t, err, "mlx_reshape")
				v, err := mlx.ActiveMemory()
				assert.NoError(t, err)
				_ = v
			}
		}()
	}
	wg.Wait()

	assert.PanicsWithValue(t, "boom", func() { _ = mlx.Do(func() error { panic("boom") }) })
	// The MLX thread survives a panic in Do.
	_, err = mlx.Version()
	assert.NoError(t, err)
}

func TestAScalarIsZeroDimensionalAsInPython(t *testing.T) {
	requireMLX(t)
	s := ok(mlx.Scalar(float32(2.5)))(t)
	defer s.Free()
	assert.Len(t, s.Shape(), 0, "a scalar has no dimensions")
	assert.Equal(t, mlx.Float32, s.Dtype())
	assert.Equal(t, []float32{2.5}, floats(t, s))
	// Added to a vector it broadcasts and leaves the vector's shape.
	v := arr(t, []float32{1, 2})
	defer v.Free()
	sum := ok(mlx.Add(v, s))(t)
	defer sum.Free()
	assert.Equal(t, []int{2}, sum.Shape())
	assert.Equal(t, []float32{3.5, 4.5}, floats(t, sum))
}
