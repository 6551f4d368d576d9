// Package units prints and parses byte counts the one way mlxdist does
// everywhere: GB means 10^9 bytes, shown with two decimals ("309.91 GB").
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// GB is the number of bytes in the gigabyte used in every figure mlxdist
// prints or reads: 10^9.
const GB = 1e9

// FormatGB formats n bytes as gigabytes with two decimals: "12.35 GB".
func FormatGB(n int64) string { return fmt.Sprintf("%.2f GB", float64(n)/GB) }

// FormatGBSigned is FormatGB for a difference that may be negative.
func FormatGBSigned(n int64) string { return fmt.Sprintf("%+.2f GB", float64(n)/GB) }

// ParseGB parses a decimal number of gigabytes ("5", "2.5", " 10 ") into
// bytes. Negative, non-finite and unparsable values are errors.
func ParseGB(s string) (int64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of GB", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("%q is not a non-negative finite number of GB", s)
	}
	b := v * GB
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("%q GB does not fit in 64 bits of bytes", s)
	}
	return int64(b), nil
}
