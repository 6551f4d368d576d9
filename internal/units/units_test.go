package units

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFormatGBPrintsDecimalGigabytesWithTwoDecimals(t *testing.T) {
	assert.Equal(t, "309.91 GB", FormatGB(309_910_000_000))
	assert.Equal(t, "0.00 GB", FormatGB(0))
	assert.Equal(t, "-1.50 GB", FormatGBSigned(-1_500_000_000))
}

func TestParseGBAcceptsDecimalsAndRejectsGarbage(t *testing.T) {
	for in, want := range map[string]int64{"5": 5e9, "2.5": 2.5e9, " 10 ": 10e9, "0": 0} {
		got, err := ParseGB(in)
		assert.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "five", "-1", "NaN", "Inf", "1e30"} {
		_, err := ParseGB(in)
		assert.Error(t, err, in)
	}
}
