package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

// A matcher reports where a match of a pre-tokenizer pattern that starts
// exactly at s[i] ends, or -1 when the pattern does not match there. Each
// matcher is a hand-written scanner with the semantics of a backtracking
// regex engine: alternatives are tried in order and the first that matches
// wins (leftmost-first, not longest); an optional prefix is tried with, then
// without; a greedy run gives back one rune at a time until what follows it
// matches.
type matcher func(s string, i int) int

// The patterns the scanners implement, as the reference tokenizers write
// them. A pattern that is not one of these is an error: a tokenizer never
// falls back to some other split.
const (
	// PatternKimi is Kimi K2's tiktoken pattern.
	PatternKimi = `[\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternGPT2 is GPT-2's, also what a byte-level pre-tokenizer with
	// use_regex splits by.
	PatternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// PatternCL100K is cl100k_base's, which Llama 3 uses too.
	PatternCL100K = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternCL100KPossessive is the same split, as newer tiktoken writes it.
	PatternCL100KPossessive = `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`
	// PatternQwen2 is cl100k's with one digit per piece (Qwen2, Qwen3).
	PatternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternO200K is o200k_base's.
	PatternO200K = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternDigits3, PatternDeepSeekCJK and PatternDeepSeekWords are the
	// three splits of DeepSeek-V3's pre-tokenizer sequence.
	PatternDigits3       = `\p{N}{1,3}`
	PatternDeepSeekCJK   = "[一-龥\u3040-ゟ゠-ヿ]+"
	PatternDeepSeekWords = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
)

// wordScanner is the family of patterns above that cover every rune of the
// text: contractions, words, numbers, punctuation, whitespace.
type wordScanner struct {
	hanRun        bool   // [\p{Han}]+ first (Kimi)
	contractions  int    // leading contraction alternative: 0 none, 1 case-sensitive (GPT-2), 2 (?i:...)
	cased         bool   // the two cased-word alternatives with a trailing (?i) contraction (o200k, Kimi)
	excludeHan    bool   // the cased classes are &&[^\p{Han}] (Kimi)
	spaceLetters  bool   // " ?\p{L}+" and " ?\p{N}+" (GPT-2) instead of "[^\r\n\p{L}\p{N}]?\p{L}+"
	maxDigits     int    // \p{N}{1,maxDigits}; 0 with spaceLetters means unbounded
	punctTail     uint16 // classes of the run after punctuation: cNewline, or 0 for none
	punctSlash    bool   // the run after punctuation takes '/' too (o200k)
	newlineSpaces bool   // \s*[\r\n]+
}

func (w *wordScanner) match(s string, i int) int {
	c, n := classAt(s, i)
	if w.hanRun && c&cHan != 0 {
		return runEnd(s, i, cHan, 0)
	}
	if w.contractions != 0 && s[i] == '\'' {
		if e := contraction(s, i, w.contractions == 2); e >= 0 {
			return e
		}
	}
	prefix := c&(cLetter|cNumber|cNewline) == 0 // [^\r\n\p{L}\p{N}]
	switch {
	case w.cased:
		var not uint16
		if w.excludeHan {
			not = cHan
		}
		if prefix {
			if e := casedLowerWord(s, i+n, not); e >= 0 {
				return e
			}
		}
		if e := casedLowerWord(s, i, not); e >= 0 {
			return e
		}
		if prefix {
			if e := casedUpperWord(s, i+n, not); e >= 0 {
				return e
			}
		}
		if e := casedUpperWord(s, i, not); e >= 0 {
			return e
		}
	case w.spaceLetters:
		if e := spaceRun(s, i, cLetter, 0); e >= 0 {
			return e
		}
	default:
		if prefix && i+n < len(s) {
			if c2, _ := classAt(s, i+n); c2&cLetter != 0 {
				return runEnd(s, i+n, cLetter, 0)
			}
		}
		if c&cLetter != 0 {
			return runEnd(s, i, cLetter, 0)
		}
	}
	if w.spaceLetters {
		if e := spaceRun(s, i, cNumber, 0); e >= 0 {
			return e
		}
	} else if c&cNumber != 0 {
		e := i
		for k := 0; k < w.maxDigits && e < len(s); k++ {
			c2, n2 := classAt(s, e)
			if c2&cNumber == 0 {
				break
			}
			e += n2
		}
		return e
	}
	// " ?[^\s\p{L}\p{N}]+" and its tail.
	if e := spaceRun(s, i, 0, cSpace|cLetter|cNumber); e >= 0 {
		if w.punctTail != 0 || w.punctSlash {
			for e < len(s) && (s[e] == '\r' || s[e] == '\n' || (w.punctSlash && s[e] == '/')) {
				e++
			}
		}
		return e
	}
	return whitespace(s, i, w.newlineSpaces)
}

// whitespace matches "\s*[\r\n]+" (when newlines is set), then
// "\s+(?!\S)", then "\s+" at i.
func whitespace(s string, i int, newlines bool) int {
	c, _ := classAt(s, i)
	if c&cSpace == 0 {
		return -1
	}
	j := runEnd(s, i, cSpace, 0)
	if newlines {
		// \s* gives back runes until [\r\n]+ can match: the match ends
		// just after the last newline of the run.
		for k := j; k > i; k-- {
			if s[k-1] == '\n' || s[k-1] == '\r' {
				return k
			}
		}
	}
	if j == len(s) {
		return j
	}
	// The rune at j is not whitespace, so (?!\S) needs \s+ to give back
	// its last rune; \s+ alone matches when that leaves nothing.
	if k := lastRuneStart(s, j); k > i {
		return k
	}
	return j
}

// spaceRun matches " ?[class]+" at i: an optional ASCII space, then a run
// of runes with a bit of want (or, when want is 0, with no bit of not).
func spaceRun(s string, i int, want, not uint16) int {
	in := func(c uint16) bool {
		if want != 0 {
			return c&want != 0
		}
		return c&not == 0
	}
	if s[i] == ' ' && i+1 < len(s) {
		if c, _ := classAt(s, i+1); in(c) {
			return runOf(s, i+1, in)
		}
	}
	if c, _ := classAt(s, i); in(c) {
		return runOf(s, i, in)
	}
	return -1
}

func runOf(s string, i int, in func(uint16) bool) int {
	for i < len(s) {
		c, n := classAt(s, i)
		if !in(c) {
			break
		}
		i += n
	}
	return i
}

// casedLowerWord matches "X*Y+C?" at i, where X is [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}],
// Y is [\p{Ll}\p{Lm}\p{Lo}\p{M}], both without the classes in not, and C an
// optional case-insensitive contraction.
func casedLowerWord(s string, i int, not uint16) int {
	if i >= len(s) {
		return -1
	}
	j := runEnd(s, i, cUpperish, not)
	// X* gives back runes until Y+ can start: at the last position k <= j
	// whose rune is in Y.
	k := j
	for {
		if k < len(s) {
			if c, _ := classAt(s, k); c&cLowerish != 0 && c&not == 0 {
				break
			}
		}
		if k == i {
			return -1
		}
		k = lastRuneStart(s, k)
	}
	e := runEnd(s, k, cLowerish, not)
	if ce := contraction(s, e, true); ce >= 0 {
		return ce
	}
	return e
}

// casedUpperWord matches "X+Y*C?" at i (see casedLowerWord).
func casedUpperWord(s string, i int, not uint16) int {
	if i >= len(s) {
		return -1
	}
	j := runEnd(s, i, cUpperish, not)
	if j == i {
		return -1
	}
	e := runEnd(s, j, cLowerish, not)
	if ce := contraction(s, e, true); ce >= 0 {
		return ce
	}
	return e
}

// contraction matches "'s|'t|'re|'ve|'m|'ll|'d" at i, case-insensitively
// when fold is set (Unicode simple folding, under which 's' also matches
// U+017F LATIN SMALL LETTER LONG S).
func contraction(s string, i int, fold bool) int {
	if i >= len(s) || s[i] != '\'' {
		return -1
	}
	at := func(k int, want byte) int {
		if k >= len(s) {
			return 0
		}
		b := s[k]
		if b == want {
			return 1
		}
		if !fold {
			return 0
		}
		if b == want-'a'+'A' {
			return 1
		}
		if want == 's' && b == 0xc5 && k+1 < len(s) && s[k+1] == 0xbf { // ſ
			return 2
		}
		return 0
	}
	for _, alt := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		k := i + 1
		ok := true
		for j := 0; j < len(alt); j++ {
			w := at(k, alt[j])
			if w == 0 {
				ok = false
				break
			}
			k += w
		}
		if ok {
			return k
		}
	}
	return -1
}

// digitsMatcher matches \p{N}{1,max}.
func digitsMatcher(max int) matcher {
	return func(s string, i int) int {
		e := i
		for k := 0; k < max && e < len(s); k++ {
			c, n := classAt(s, e)
			if c&cNumber == 0 {
				break
			}
			e += n
		}
		if e == i {
			return -1
		}
		return e
	}
}

func deepSeekCJK(s string, i int) int {
	e := i
	for e < len(s) {
		r, n := utf8.DecodeRuneInString(s[e:])
		if !(r >= 0x4e00 && r <= 0x9fa5 || r >= 0x3040 && r <= 0x30ff) {
			break
		}
		e += n
	}
	if e == i {
		return -1
	}
	return e
}

func asciiPunct(b byte) bool {
	return b >= '!' && b <= '/' || b >= ':' && b <= '@' || b >= '[' && b <= '`' || b >= '{' && b <= '~'
}

func asciiLetter(b byte) bool { return b|0x20 >= 'a' && b|0x20 <= 'z' }

func deepSeekWords(s string, i int) int {
	// [!"#...~][A-Za-z]+
	if asciiPunct(s[i]) && i+1 < len(s) && asciiLetter(s[i+1]) {
		e := i + 1
		for e < len(s) && asciiLetter(s[e]) {
			e++
		}
		return e
	}
	// [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
	c, n := classAt(s, i)
	if c&(cNewline|cLetter|cPunct|cSymbol) == 0 && i+n < len(s) {
		if c2, _ := classAt(s, i+n); c2&(cLetter|cMark) != 0 {
			return runEnd(s, i+n, cLetter|cMark, 0)
		}
	}
	if c&(cLetter|cMark) != 0 {
		return runEnd(s, i, cLetter|cMark, 0)
	}
	// " ?[\p{P}\p{S}]+[\r\n]*"
	if e := spaceRun(s, i, cPunct|cSymbol, 0); e >= 0 {
		for e < len(s) && (s[e] == '\r' || s[e] == '\n') {
			e++
		}
		return e
	}
	return whitespace(s, i, true)
}

// matcherFor returns the scanner for a pattern, or an error naming it.
func matcherFor(pattern string) (matcher, error) {
	buildClassTable()
	var w *wordScanner
	switch pattern {
	case PatternKimi:
		w = &wordScanner{hanRun: true, cased: true, excludeHan: true, maxDigits: 3, punctTail: cNewline, newlineSpaces: true}
	case PatternO200K:
		w = &wordScanner{cased: true, maxDigits: 3, punctTail: cNewline, punctSlash: true, newlineSpaces: true}
	case PatternGPT2:
		w = &wordScanner{contractions: 1, spaceLetters: true}
	case PatternCL100K, PatternCL100KPossessive:
		w = &wordScanner{contractions: 2, maxDigits: 3, punctTail: cNewline, newlineSpaces: true}
	case PatternQwen2:
		w = &wordScanner{contractions: 2, maxDigits: 1, punctTail: cNewline, newlineSpaces: true}
	case PatternDigits3:
		return digitsMatcher(3), nil
	case PatternDeepSeekCJK:
		return deepSeekCJK, nil
	case PatternDeepSeekWords:
		return deepSeekWords, nil
	default:
		return nil, fmt.Errorf("%w: pre-tokenizer pattern %q", ErrUnsupported, pattern)
	}
	return w.match, nil
}

// splitMatches calls fn for each piece of s[start:end) that m splits it
// into, as a regex find-all does: the leftmost match, then the next one
// from its end. With gaps set, the text between matches is a piece of its
// own (Hugging Face's "Isolated" split); without, it is dropped as tiktoken
// drops it (no pattern here leaves any when the whole text is scanned).
func splitMatches(m matcher, s string, gaps bool, fn func(piece string)) {
	i, last := 0, 0
	for i < len(s) {
		e := m(s, i)
		if e < 0 {
			_, n := utf8.DecodeRuneInString(s[i:])
			i += n
			continue
		}
		if gaps && last < i {
			fn(s[last:i])
		}
		fn(s[i:e])
		i, last = e, e
	}
	if gaps && last < len(s) {
		fn(s[last:])
	}
}
