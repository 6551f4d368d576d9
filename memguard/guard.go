package memguard

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/mlxdist/mlxdist/internal/units"
)

// EnvHeadroom names the environment variable that sets a guard's headroom
// in GB (decimals allowed) when the guard is built with [FromEnv].
const EnvHeadroom = "MLX_MEMORY_GUARD_GB"

// MinDefaultHeadroom is the floor of the default headroom: a guard keeps a
// tenth of a large machine free, but never less than 5 GB, which the
// operating system itself needs to stay responsive.
const MinDefaultHeadroom = 5_000_000_000

// ErrExceeded is matched by every [ExceededError].
var ErrExceeded = errors.New("memguard: memory limit exceeded")

// ErrHeadroom is matched by errors for a headroom that cannot be used: a
// malformed MLX_MEMORY_GUARD_GB, or a headroom that leaves no memory at all.
var ErrHeadroom = errors.New("memguard: invalid headroom")

// An ExceededError reports that used memory passed, or would pass, a
// guard's limit.
type ExceededError struct {
	Label    string // where the check was made: "after layer 17", "plan"
	Measure  string // what Used measures: "active", "resident"
	Used     int64  // bytes measured
	Extra    int64  // bytes a Fits call asked for; 0 for Check
	Limit    int64
	Physical int64
	Headroom int64
}

func (e *ExceededError) Error() string {
	what := fmt.Sprintf("%s %s exceeds", e.Measure, units.FormatGB(e.Used))
	if e.Extra > 0 {
		what = fmt.Sprintf("%s %s + %s would exceed", e.Measure, units.FormatGB(e.Used), units.FormatGB(e.Extra))
	}
	return fmt.Sprintf("memguard: %s: %s limit %s (physical %s, headroom %s); lower the load or set %s",
		e.Label, what, units.FormatGB(e.Limit), units.FormatGB(e.Physical), units.FormatGB(e.Headroom), EnvHeadroom)
}

// Is makes errors.Is(err, ErrExceeded) true.
func (e *ExceededError) Is(target error) bool { return target == ErrExceeded }

// A Guard compares used memory with Limit = Physical − Headroom. Build one
// with [New] or [FromEnv]; the zero Guard has no source to measure. It holds
// no state besides its configuration, so one Guard may be used from several
// goroutines as far as its Source allows.
type Guard struct {
	physical, headroom int64
	headroomFrom       string
	measure            string
	used               Source
}

type config struct {
	physical    int64
	hasPhysical bool
	headroom    int64
	hasHeadroom bool
	lookupEnv   func(string) (string, bool)
	measure     string
	used        Source
}

// An Option configures a Guard built by [New] or [FromEnv].
type Option func(*config)

// WithPhysical sets the physical memory in bytes instead of asking
// [PhysicalMemory]: for tests, for systems memguard cannot measure, and for
// guarding a budget smaller than the machine.
func WithPhysical(bytes int64) Option {
	return func(c *config) { c.physical, c.hasPhysical = bytes, true }
}

// WithHeadroom sets the headroom in bytes instead of the default
// max(10% of physical, 5 GB). MLX_MEMORY_GUARD_GB, where the guard reads
// the environment, still overrides it: the person running the program has
// the last word.
func WithHeadroom(bytes int64) Option {
	return func(c *config) { c.headroom, c.hasHeadroom = bytes, true }
}

// WithLookupEnv makes the guard read MLX_MEMORY_GUARD_GB through lookup
// (os.LookupEnv in [FromEnv]); nil stops it reading the environment.
func WithLookupEnv(lookup func(string) (string, bool)) Option {
	return func(c *config) { c.lookupEnv = lookup }
}

// WithUsed sets the source of "used" memory and the word that names it in
// messages ("active" for MLX's active memory). Without it a guard measures
// [ProcessRSS], named "resident".
func WithUsed(measure string, src Source) Option {
	return func(c *config) { c.measure, c.used = measure, src }
}

// New builds a Guard. It does not read the environment unless given
// [WithLookupEnv]; [FromEnv] does.
func New(opts ...Option) (*Guard, error) {
	c := config{measure: "resident", used: ProcessRSS}
	for _, o := range opts {
		o(&c)
	}
	if c.used == nil {
		return nil, errors.New("memguard: WithUsed given a nil source")
	}
	g := &Guard{physical: c.physical, measure: c.measure, used: c.used}
	if !c.hasPhysical {
		p, err := PhysicalMemory()
		if err != nil {
			return nil, fmt.Errorf("%w; give the physical memory with WithPhysical", err)
		}
		g.physical = p
	}
	g.headroom, g.headroomFrom = DefaultHeadroom(g.physical), "default"
	if c.hasHeadroom {
		g.headroom, g.headroomFrom = c.headroom, "option"
	}
	if c.lookupEnv != nil {
		if v, ok := c.lookupEnv(EnvHeadroom); ok && v != "" {
			h, err := units.ParseGB(v)
			if err != nil {
				// ParseGB's message starts with the quoted value.
				return nil, fmt.Errorf("%w: %s=%v; set %s to the headroom in GB, e.g. 20", ErrHeadroom, EnvHeadroom, err, EnvHeadroom)
			}
			g.headroom, g.headroomFrom = h, EnvHeadroom
		}
	}
	if g.headroom >= g.physical {
		return nil, fmt.Errorf("%w: headroom %s (%s) leaves nothing of physical memory %s; set %s below it",
			ErrHeadroom, units.FormatGB(g.headroom), g.headroomFrom, units.FormatGB(g.physical), EnvHeadroom)
	}
	return g, nil
}

// FromEnv builds a Guard like [New] that also reads MLX_MEMORY_GUARD_GB
// from the process environment. An empty value counts as unset; a value
// that is not a non-negative number of GB is an error, never a silent
// default.
func FromEnv(opts ...Option) (*Guard, error) {
	return New(append([]Option{WithLookupEnv(os.LookupEnv)}, opts...)...)
}

// DefaultHeadroom returns max(10% of physical, 5 GB), rounded down to a
// byte.
func DefaultHeadroom(physical int64) int64 {
	return max(physical/10, MinDefaultHeadroom)
}

// Physical returns the physical memory the guard assumes, in bytes.
func (g *Guard) Physical() int64 { return g.physical }

// Headroom returns the bytes the guard keeps free.
func (g *Guard) Headroom() int64 { return g.headroom }

// Limit returns Physical − Headroom, the most used memory Check accepts.
func (g *Guard) Limit() int64 { return g.physical - g.headroom }

// Check measures used memory and returns a *[ExceededError] when it is past
// the limit. label says where the check is made ("after layer 17") and
// begins the error's message. An error from the source is returned wrapped.
func (g *Guard) Check(label string) error {
	used, err := g.measureUsed(label)
	if err != nil {
		return err
	}
	if used > g.Limit() {
		return g.exceeded(label, used, 0)
	}
	return nil
}

// Fits reports, before a step, whether extra more bytes would keep used
// memory within the limit: nil if used + extra ≤ limit, else a
// *[ExceededError] labelled "plan".
func (g *Guard) Fits(extra int64) error {
	const label = "plan"
	if extra < 0 {
		return fmt.Errorf("memguard: %s: %d bytes is not a size", label, extra)
	}
	used, err := g.measureUsed(label)
	if err != nil {
		return err
	}
	if limit := g.Limit(); extra > limit || used > limit-extra {
		return g.exceeded(label, used, extra)
	}
	return nil
}

// WouldFit is Fits as a boolean, for callers that choose rather than fail;
// only a measuring error is returned as an error.
func (g *Guard) WouldFit(extra int64) (bool, error) {
	err := g.Fits(extra)
	if errors.Is(err, ErrExceeded) {
		return false, nil
	}
	return err == nil, err
}

func (g *Guard) measureUsed(label string) (int64, error) {
	used, err := g.used()
	if err != nil {
		return 0, fmt.Errorf("memguard: %s: measuring %s memory: %w", label, g.measure, err)
	}
	return used, nil
}

func (g *Guard) exceeded(label string, used, extra int64) *ExceededError {
	return &ExceededError{Label: label, Measure: g.measure, Used: used, Extra: extra,
		Limit: g.Limit(), Physical: g.physical, Headroom: g.headroom}
}

// String describes the guard's configuration:
// "memguard: limit 460.80 GB (physical 512.00 GB, headroom 51.20 GB from default)".
//
// A headroom of zero (MLX_MEMORY_GUARD_GB=0) is allowed but says so: the
// guard then lets a load use every byte, and macOS panics before it is
// refused.
func (g *Guard) String() string {
	msg := fmt.Sprintf("memguard: limit %s (physical %s, headroom %s from %s)",
		units.FormatGB(g.Limit()), units.FormatGB(g.physical), units.FormatGB(g.headroom), g.headroomFrom)
	if w := g.Warning(); w != "" {
		msg += "; warning: " + w
	}
	return msg
}

// Warning returns what is unsafe about the guard's settings, "" when
// nothing is: today a headroom of zero, which leaves the system nothing.
func (g *Guard) Warning() string {
	if g.headroom == 0 {
		return fmt.Sprintf("no headroom (%s): nothing is kept for the system, so memory can run out before the guard refuses a load; set %s to at least %s",
			g.headroomFrom, EnvHeadroom, units.FormatGB(MinDefaultHeadroom))
	}
	return ""
}

// A Report is one measurement against a guard's limit, for logging.
type Report struct {
	Measure  string
	Used     int64
	Limit    int64
	Free     int64 // Limit − Used, or 0 past the limit
	Physical int64
	Headroom int64
}

// Status measures used memory once and reports it against the limit. It
// does not fail when used memory is past the limit; Check does.
func (g *Guard) Status() (Report, error) {
	used, err := g.measureUsed("status")
	if err != nil {
		return Report{}, err
	}
	r := Report{Measure: g.measure, Used: used, Limit: g.Limit(), Physical: g.physical, Headroom: g.headroom}
	if used < r.Limit {
		r.Free = r.Limit - used
	}
	return r, nil
}

// String reads "resident 1.20 GB of limit 460.80 GB, 459.60 GB free".
func (r Report) String() string {
	return fmt.Sprintf("%s %s of limit %s, %s free",
		r.Measure, units.FormatGB(r.Used), units.FormatGB(r.Limit), units.FormatGB(r.Free))
}

// LogValue logs a Report as a group of GB figures.
func (r Report) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String(r.Measure, units.FormatGB(r.Used)),
		slog.String("limit", units.FormatGB(r.Limit)),
		slog.String("free", units.FormatGB(r.Free)),
		slog.String("physical", units.FormatGB(r.Physical)),
		slog.String("headroom", units.FormatGB(r.Headroom)),
	)
}
