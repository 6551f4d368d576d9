package tokenizer

import (
	"slices"
	"strings"
)

//go:generate ../.venv/bin/python gen_nfc.py znfc.go
//go:generate gofmt -w znfc.go

// Unicode Normalization Form C, for the tokenizers whose normalizer is NFC
// (Qwen2, Qwen2.5, Qwen3). Package unicode has no decomposition tables and
// the standard library no normalizer, so the tables are generated
// (znfc.go) and the algorithm is the standard one: decompose canonically,
// order combining marks by class, compose again.

// Hangul syllables compose and decompose by arithmetic.
const (
	hangulS, hangulL, hangulV, hangulT       = 0xAC00, 0x1100, 0x1161, 0x11A7
	hangulLCount, hangulVCount, hangulTCount = 19, 21, 28
	hangulNCount                             = hangulVCount * hangulTCount
	hangulSCount                             = hangulLCount * hangulNCount
)

// nfc returns s in Normalization Form C. Text whose runes are all below
// U+0300 is already in it and comes back as it is, without a copy.
func nfc(s string) string {
	quick := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0xcc { // a rune of U+0300 or above starts with 0xCC or more
			quick = false
			break
		}
	}
	if quick {
		return s
	}
	// Decompose.
	runes := make([]rune, 0, len(s))
	for _, r := range s {
		runes = decompose(runes, r)
	}
	// Order each run of combining marks by class, stably.
	for i := 0; i < len(runes); {
		if nfcCombiningClass[runes[i]] == 0 {
			i++
			continue
		}
		j := i
		for j < len(runes) && nfcCombiningClass[runes[j]] != 0 {
			j++
		}
		slices.SortStableFunc(runes[i:j], func(a, b rune) int {
			return int(nfcCombiningClass[a]) - int(nfcCombiningClass[b])
		})
		i = j
	}
	// Compose: each rune joins the last starter unless a rune between them
	// blocks it (has a class of zero or no lower than its own).
	out := runes[:0]
	starter := -1
	var lastClass uint8
	for _, r := range runes {
		cc := nfcCombiningClass[r]
		if starter >= 0 && (len(out)-1 == starter || lastClass != 0 && lastClass < cc) {
			if c, ok := composePair(out[starter], r); ok {
				out[starter] = c
				continue
			}
		}
		if cc == 0 {
			starter = len(out)
		}
		lastClass = cc
		out = append(out, r)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range out {
		b.WriteRune(r)
	}
	return b.String()
}

func decompose(out []rune, r rune) []rune {
	if r >= hangulS && r < hangulS+hangulSCount {
		i := r - hangulS
		out = append(out, hangulL+i/hangulNCount, hangulV+(i%hangulNCount)/hangulTCount)
		if t := i % hangulTCount; t != 0 {
			out = append(out, hangulT+t)
		}
		return out
	}
	if d, ok := nfcDecomposition[r]; ok {
		for _, x := range d {
			out = append(out, x)
		}
		return out
	}
	return append(out, r)
}

func composePair(a, b rune) (rune, bool) {
	if a >= hangulL && a < hangulL+hangulLCount && b >= hangulV && b < hangulV+hangulVCount {
		return hangulS + ((a-hangulL)*hangulVCount+(b-hangulV))*hangulTCount, true
	}
	if a >= hangulS && a < hangulS+hangulSCount && (a-hangulS)%hangulTCount == 0 && b > hangulT && b < hangulT+hangulTCount {
		return a + (b - hangulT), true
	}
	c, ok := nfcComposition[uint64(a)<<21|uint64(b)]
	return c, ok
}
