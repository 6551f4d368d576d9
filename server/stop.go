package server

import "strings"

// stopText finds stop sequences in generated text as it grows, and says how
// much of the text is safe to send: everything but a tail that could still
// become the start of a stop sequence.
type stopText struct {
	stops []string
	text  strings.Builder
	sent  int
}

// add appends s and returns the text now safe to send, and whether a stop
// sequence ended the text (what came before it is then all sent).
func (st *stopText) add(s string) (string, bool) {
	st.text.WriteString(s)
	all := st.text.String()
	// A stop sequence may start in text already held back, never in text
	// already sent.
	from := st.sent
	cut := -1
	for _, stop := range st.stops {
		if i := strings.Index(all[from:], stop); i >= 0 && (cut < 0 || from+i < cut) {
			cut = from + i
		}
	}
	if cut >= 0 {
		out := all[st.sent:cut]
		st.sent = cut
		return out, true
	}
	safe := len(all)
	for _, stop := range st.stops {
		for n := min(len(stop)-1, len(all)-st.sent); n > 0; n-- {
			if strings.HasSuffix(all, stop[:n]) {
				safe = min(safe, len(all)-n)
				break
			}
		}
	}
	out := all[st.sent:safe]
	st.sent = safe
	return out, false
}

// rest returns what was held back, once no more text will come.
func (st *stopText) rest() string {
	all := st.text.String()
	out := all[st.sent:]
	st.sent = len(all)
	return out
}
