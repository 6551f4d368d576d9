package oneline

import "testing"

func TestListCutsLongListsToACount(t *testing.T) {
	for _, tt := range []struct {
		items []string
		n     int
		sep   string
		want  string
	}{
		{nil, 3, ", ", ""},
		{[]string{"a"}, 3, ", ", "a"},
		{[]string{"a", "b", "c"}, 3, ", ", "a, b, c"},
		{[]string{"a", "b", "c", "d", "e"}, 3, ", ", "a, b, c and 2 more"},
		{[]string{"a", "b", "c", "d", "e"}, 2, "; ", "a; b; and 3 more"},
	} {
		got := Join(tt.items, tt.n, tt.sep)
		if tt.sep == ", " {
			got = List(tt.items, tt.n)
		}
		if got != tt.want {
			t.Errorf("Join(%q, %d, %q) = %q, want %q", tt.items, tt.n, tt.sep, got, tt.want)
		}
	}
	if got := List([]string{"a", "b", "c", "d"}, 2); got != "a, b and 2 more" {
		t.Errorf("List = %q", got)
	}
}
