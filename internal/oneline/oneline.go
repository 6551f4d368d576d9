// Package oneline keeps messages to one line a person can read: a long list
// is cut to its first few items and a count of the rest.
package oneline

import (
	"fmt"
	"strings"
)

// List joins the first n items with commas and says how many more there
// are: List([a b c d e], 3) is "a, b, c and 2 more".
func List(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// Join is List for items that hold commas themselves, separated by sep:
// Join(items, 2, "; ") is "a; b; and 3 more".
func Join(items []string, n int, sep string) string {
	if len(items) <= n {
		return strings.Join(items, sep)
	}
	return fmt.Sprintf("%s%sand %d more", strings.Join(items[:n], sep), sep, len(items)-n)
}
