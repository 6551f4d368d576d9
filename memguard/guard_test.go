package memguard

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// env returns a lookup function over a fixed environment.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// fixed is a Source that always measures n bytes.
func fixed(n int64) Source { return func() (int64, error) { return n, nil } }

func TestGuardPolicy(t *testing.T) {
	const GB = 1_000_000_000
	tests := []struct {
		name     string
		physical int64
		opts     []Option
		headroom int64
	}{
		{"a small 8 GB machine keeps the 5 GB floor", 8 * GB, nil, 5 * GB},
		{"a 50 GB machine sits where a tenth meets the floor", 50 * GB, nil, 5 * GB},
		{"a 512 GB machine keeps a tenth", 512 * GB, nil, 51_200_000_000},
		{"a 2 TB machine keeps a tenth", 2000 * GB, nil, 200 * GB},
		{"the environment overrides the default", 512 * GB,
			[]Option{WithLookupEnv(env(map[string]string{EnvHeadroom: "20"}))}, 20 * GB},
		{"the environment takes decimals", 512 * GB,
			[]Option{WithLookupEnv(env(map[string]string{EnvHeadroom: "2.5"}))}, 2_500_000_000},
		{"the environment may be padded with spaces", 512 * GB,
			[]Option{WithLookupEnv(env(map[string]string{EnvHeadroom: " 7 "}))}, 7 * GB},
		{"an empty environment value counts as unset", 512 * GB,
			[]Option{WithLookupEnv(env(map[string]string{EnvHeadroom: ""}))}, 51_200_000_000},
		{"zero headroom from the environment lets the limit reach physical memory", 512 * GB,
			[]Option{WithLookupEnv(env(map[string]string{EnvHeadroom: "0"}))}, 0},
		{"an explicit headroom replaces the default", 512 * GB,
			[]Option{WithHeadroom(30 * GB)}, 30 * GB},
		{"the environment overrides even an explicit headroom", 512 * GB,
			[]Option{WithHeadroom(30 * GB), WithLookupEnv(env(map[string]string{EnvHeadroom: "10"}))}, 10 * GB},
		{"New without a lookup ignores the environment", 512 * GB,
			[]Option{WithLookupEnv(nil)}, 51_200_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(append([]Option{WithPhysical(tt.physical)}, tt.opts...)...)
			require.NoError(t, err)
			assert.Equal(t, tt.physical, g.Physical())
			assert.Equal(t, tt.headroom, g.Headroom())
			assert.Equal(t, tt.physical-tt.headroom, g.Limit())
		})
	}
}

func TestGuardRejectsHeadroomItCannotUse(t *testing.T) {
	const GB = 1_000_000_000
	tests := []struct {
		name     string
		physical int64
		opts     []Option
		mention  string
	}{
		{"a word in the environment", 512 * GB,
			[]Option{WithLookupEnv(env(map[string]string{EnvHeadroom: "abc"}))}, `MLX_MEMORY_GUARD_GB="abc"`},
		{"a negative number in the environment", 512 * GB,
			[]Option{WithLookupEnv(env(map[string]string{EnvHeadroom: "-1"}))}, `MLX_MEMORY_GUARD_GB="-1"`},
		{"a unit in the environment", 512 * GB,
			[]Option{WithLookupEnv(env(map[string]string{EnvHeadroom: "20GB"}))}, `"20GB"`},
		{"an environment headroom of all physical memory", 512 * GB,
			[]Option{WithLookupEnv(env(map[string]string{EnvHeadroom: "512"}))}, "headroom 512.00 GB (MLX_MEMORY_GUARD_GB)"},
		{"an explicit headroom above physical memory", 8 * GB,
			[]Option{WithHeadroom(9 * GB)}, "headroom 9.00 GB (option)"},
		{"a machine smaller than the default's 5 GB floor", 4 * GB,
			nil, "physical memory 4.00 GB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(append([]Option{WithPhysical(tt.physical)}, tt.opts...)...)
			require.Error(t, err)
			assert.Nil(t, g)
			assert.ErrorIs(t, err, ErrHeadroom)
			assert.Contains(t, err.Error(), tt.mention)
			assert.Contains(t, err.Error(), "set MLX_MEMORY_GUARD_GB", "the error says what to do")
		})
	}
}

func TestFromEnvReadsTheProcessEnvironment(t *testing.T) {
	t.Setenv(EnvHeadroom, "2.5")
	g, err := FromEnv(WithPhysical(512e9))
	require.NoError(t, err)
	assert.Equal(t, int64(2_500_000_000), g.Headroom())
	assert.Equal(t, "memguard: limit 509.50 GB (physical 512.00 GB, headroom 2.50 GB from MLX_MEMORY_GUARD_GB)", g.String())

	t.Setenv(EnvHeadroom, "abc")
	_, err = FromEnv(WithPhysical(512e9))
	assert.ErrorIs(t, err, ErrHeadroom)
}

func TestNewAsksTheSystemForPhysicalMemory(t *testing.T) {
	want, err := PhysicalMemory()
	if errors.Is(err, ErrUnsupported) {
		_, err := New()
		assert.ErrorIs(t, err, ErrUnsupported, "without WithPhysical a guard needs the system's answer")
		return
	}
	require.NoError(t, err)
	if want <= MinDefaultHeadroom {
		t.Skipf("this machine's %d bytes are below the default headroom", want)
	}
	g, err := New()
	require.NoError(t, err)
	assert.Equal(t, want, g.Physical())
	assert.Equal(t, DefaultHeadroom(want), g.Headroom())
}

func TestCheckComparesUsedWithTheLimit(t *testing.T) {
	const physical = 512_000_000_000
	limit := physical - DefaultHeadroom(physical)
	tests := []struct {
		name string
		used int64
		ok   bool
	}{
		{"nothing used passes", 0, true},
		{"one byte below the limit passes", limit - 1, true},
		{"exactly the limit passes", limit, true},
		{"one byte past the limit trips", limit + 1, false},
		{"more than physical memory trips", physical + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(WithPhysical(physical), WithUsed("active", fixed(tt.used)))
			require.NoError(t, err)
			err = g.Check("after layer 3")
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			var ex *ExceededError
			require.ErrorAs(t, err, &ex)
			assert.ErrorIs(t, err, ErrExceeded)
			assert.Equal(t, ExceededError{Label: "after layer 3", Measure: "active", Used: tt.used,
				Limit: limit, Physical: physical, Headroom: physical - limit}, *ex)
		})
	}
}

func TestExceededErrorReadsLikeALogLine(t *testing.T) {
	g, err := New(WithPhysical(512e9), WithUsed("active", fixed(470_120_000_000)))
	require.NoError(t, err)
	err = g.Check("after layer 17")
	require.Error(t, err)
	assert.Equal(t, "memguard: after layer 17: active 470.12 GB exceeds limit 460.80 GB "+
		"(physical 512.00 GB, headroom 51.20 GB); lower the load or set MLX_MEMORY_GUARD_GB", err.Error())

	err = g.Fits(1)
	require.Error(t, err)
	assert.Equal(t, "memguard: plan: active 470.12 GB + 0.00 GB would exceed limit 460.80 GB "+
		"(physical 512.00 GB, headroom 51.20 GB); lower the load or set MLX_MEMORY_GUARD_GB", err.Error())
}

func TestANegativeSizeIsAnErrorNotAFit(t *testing.T) {
	g, err := New(WithPhysical(100e9), WithHeadroom(10e9), WithUsed("active", fixed(0)))
	require.NoError(t, err)
	err = g.Fits(-1)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrExceeded)
	ok, err := g.WouldFit(-1)
	assert.False(t, ok)
	assert.ErrorContains(t, err, "-1 bytes is not a size")
}

func TestFitsAsksWhetherMoreBytesWouldFit(t *testing.T) {
	const physical, used = 100_000_000_000, 60_000_000_000
	g, err := New(WithPhysical(physical), WithHeadroom(10_000_000_000), WithUsed("active", fixed(used)))
	require.NoError(t, err)
	tests := []struct {
		name  string
		extra int64
		fits  bool
	}{
		{"nothing more fits", 0, true},
		{"up to the limit fits", 30_000_000_000, true},
		{"one byte past the limit does not", 30_000_000_001, false},
		{"more than the limit itself does not", 200_000_000_000, false},
		{"a size that would overflow the sum does not", math.MaxInt64, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := g.Fits(tt.extra)
			ok, werr := g.WouldFit(tt.extra)
			require.NoError(t, werr)
			assert.Equal(t, tt.fits, ok)
			if tt.fits {
				assert.NoError(t, err)
				return
			}
			var ex *ExceededError
			require.ErrorAs(t, err, &ex)
			assert.Equal(t, "plan", ex.Label)
			assert.Equal(t, tt.extra, ex.Extra)
			assert.Equal(t, int64(used), ex.Used)
		})
	}
}

func TestASourceErrorIsWrappedNotHidden(t *testing.T) {
	broken := errors.New("mlx: no device")
	g, err := New(WithPhysical(64e9), WithUsed("active", func() (int64, error) { return 0, broken }))
	require.NoError(t, err)

	for name, err := range map[string]error{
		"Check": g.Check("after layer 1"),
		"Fits":  g.Fits(1),
	} {
		assert.ErrorIs(t, err, broken, name)
		assert.NotErrorIs(t, err, ErrExceeded, name)
		assert.Contains(t, err.Error(), "measuring active memory", name)
	}
	ok, err := g.WouldFit(1)
	assert.False(t, ok)
	assert.ErrorIs(t, err, broken)
	_, err = g.Status()
	assert.ErrorIs(t, err, broken)

	_, err = New(WithPhysical(64e9), WithUsed("active", nil))
	assert.Error(t, err, "a nil source is refused when the guard is built")
}

func TestStatusReportsRoomLeftUnderTheLimit(t *testing.T) {
	tests := []struct {
		name string
		used int64
		free int64
	}{
		{"below the limit the rest is free", 300e9, 160_800_000_000},
		{"past the limit nothing is free", 500e9, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(WithPhysical(512e9), WithUsed("active", fixed(tt.used)))
			require.NoError(t, err)
			r, err := g.Status()
			require.NoError(t, err)
			assert.Equal(t, Report{Measure: "active", Used: tt.used, Limit: 460_800_000_000, Free: tt.free,
				Physical: 512e9, Headroom: 51_200_000_000}, r)
			assert.Equal(t, fmt.Sprintf("active %.2f GB of limit 460.80 GB, %.2f GB free", float64(tt.used)/1e9, float64(tt.free)/1e9), r.String())
		})
	}
}

func TestUnsupportedMatchesTheStandardSentinel(t *testing.T) {
	err := unsupported("current resident size")
	assert.ErrorIs(t, err, ErrUnsupported)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.Contains(t, err.Error(), runtime.GOOS)
}

func TestReportLogsAsAGroupOfGBFigures(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	g, err := New(WithPhysical(512e9), WithUsed("active", fixed(309_910_000_000)))
	require.NoError(t, err)
	r, err := g.Status()
	require.NoError(t, err)
	log.Info("loaded", "memory", r)
	assert.Equal(t, `level=INFO msg=loaded memory.active="309.91 GB" memory.limit="460.80 GB" `+
		`memory.free="150.89 GB" memory.physical="512.00 GB" memory.headroom="51.20 GB"`+"\n", buf.String())
}

func TestAZeroHeadroomIsAllowedButWarnedAbout(t *testing.T) {
	env := func(string) (string, bool) { return "0", true }
	g, err := New(WithPhysical(64e9), WithLookupEnv(env))
	require.NoError(t, err)
	assert.Zero(t, g.Headroom())
	assert.Contains(t, g.Warning(), "no headroom (MLX_MEMORY_GUARD_GB)")
	assert.Contains(t, g.String(), "warning: no headroom")

	g, err = New(WithPhysical(64e9))
	require.NoError(t, err)
	assert.Empty(t, g.Warning())
	assert.NotContains(t, g.String(), "warning")
}
