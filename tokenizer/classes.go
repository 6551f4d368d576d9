package tokenizer

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// Character classes of the pre-tokenizer patterns. The reference regex
// engines (Rust's fancy-regex under tiktoken, Oniguruma under tokenizers)
// take \s as the Unicode White_Space property, \p{L}, \p{N}, \p{M} as the
// general categories and \p{Han} as the script; package unicode has each.

// class bits, precomputed for ASCII.
const (
	cLetter   uint16 = 1 << iota // \p{L}
	cNumber                      // \p{N}
	cSpace                       // \s (White_Space)
	cMark                        // \p{M}
	cUpperish                    // Lu Lt Lm Lo M (the "upper" side of the cased patterns)
	cLowerish                    // Ll Lm Lo M (the "lower" side)
	cHan                         // \p{Han}
	cPunct                       // \p{P}
	cSymbol                      // \p{S}
	cNewline                     // \r or \n
)

var asciiClass [utf8.RuneSelf]uint16

func init() {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		asciiClass[r] = classOfSlow(r)
	}
}

// bmpClass holds the classes of the Basic Multilingual Plane, built on
// first use (a few milliseconds) rather than at program start: the tables
// of package unicode take a dozen lookups per rune, the hot path of every
// scanner.
var (
	bmpOnce  sync.Once
	bmpClass *[0x10000]uint16
)

func buildClassTable() {
	bmpOnce.Do(func() {
		var t [0x10000]uint16
		for r := range rune(0x10000) {
			t[r] = classOfSlow(r)
		}
		bmpClass = &t
	})
}

func classOfSlow(r rune) uint16 {
	var c uint16
	switch {
	case unicode.IsLetter(r):
		c |= cLetter
		if unicode.In(r, unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo) {
			c |= cUpperish
		}
		if unicode.In(r, unicode.Ll, unicode.Lm, unicode.Lo) {
			c |= cLowerish
		}
	case unicode.IsNumber(r):
		c |= cNumber
	case unicode.IsMark(r):
		c |= cMark | cUpperish | cLowerish
	case unicode.IsPunct(r):
		c |= cPunct
	case unicode.IsSymbol(r):
		c |= cSymbol
	}
	if unicode.Is(unicode.White_Space, r) {
		c |= cSpace
	}
	if unicode.Is(unicode.Han, r) {
		c |= cHan
	}
	if r == '\r' || r == '\n' {
		c |= cNewline
	}
	return c
}

// classAt decodes the rune at s[i:] and returns its classes and width. An
// invalid byte is one rune of width 1 classed as U+FFFD (a symbol), so that
// every byte of the input lands in some piece.
func classAt(s string, i int) (uint16, int) {
	b := s[i]
	if b < utf8.RuneSelf {
		return asciiClass[b], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r < 0x10000 {
		return bmpClass[r], n
	}
	return classOfSlow(r), n
}

// runEnd returns the end of the longest run of runes from i that all have
// one of the bits in want and none of the bits in not.
func runEnd(s string, i int, want, not uint16) int {
	for i < len(s) {
		c, n := classAt(s, i)
		if c&want == 0 || c&not != 0 {
			break
		}
		i += n
	}
	return i
}

// lastRuneStart returns the start of the rune that ends at i.
func lastRuneStart(s string, i int) int {
	_, n := utf8.DecodeLastRuneInString(s[:i])
	return i - n
}

// pySpace reports whether Python's str.isspace holds for r, which is what
// Jinja's trim filter strips.
func pySpace(r rune) bool {
	switch {
	case r >= 0x09 && r <= 0x0d, r >= 0x1c && r <= 0x20:
		return true
	case r < 0x80:
		return false
	}
	return unicode.Is(unicode.White_Space, r)
}
