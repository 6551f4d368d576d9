package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

func isWhiteSpace(r rune) bool { return unicode.Is(unicode.White_Space, r) }

// isWordChar is \w as Rust's regex has it (Alphabetic, marks, decimal
// digits, connector punctuation, joiners), what a single_word added token
// must not touch.
func isWordChar(r rune) bool {
	return r == 0x200c || r == 0x200d || unicode.IsLetter(r) || unicode.IsMark(r) ||
		unicode.In(r, unicode.Nd, unicode.Nl, unicode.Pc, unicode.Other_Alphabetic)
}

// toValidUTF8 converts b to a string, replacing each maximal ill-formed
// subsequence with one U+FFFD: the Unicode recommended practice that
// Python's decode(errors="replace") and Rust's from_utf8_lossy follow (Go's
// strings.ToValidUTF8 instead replaces whole runs).
func toValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			out = append(out, b[i:i+n]...)
			i += n
			continue
		}
		out = append(out, "\uFFFD"...)
		i += invalidLen(b[i:])
	}
	return string(out)
}

// invalidLen returns the length of the maximal ill-formed subsequence at the
// start of b: a lead byte and the continuation bytes that could still have
// completed it, at least one byte.
func invalidLen(b []byte) int {
	need, lo, hi := 0, byte(0x80), byte(0xbf)
	switch c := b[0]; {
	case c >= 0xc2 && c <= 0xdf:
		need = 1
	case c == 0xe0:
		need, lo = 2, 0xa0
	case c >= 0xe1 && c <= 0xec, c == 0xee, c == 0xef:
		need = 2
	case c == 0xed:
		need, hi = 2, 0x9f
	case c == 0xf0:
		need, lo = 3, 0x90
	case c >= 0xf1 && c <= 0xf3:
		need = 3
	case c == 0xf4:
		need, hi = 3, 0x8f
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		c := b[n]
		if c < lo || c > hi {
			break
		}
		lo, hi = 0x80, 0xbf
		n++
	}
	return n
}

// incompleteTail returns how many bytes at the end of b are the start of a
// UTF-8 character that more bytes could still complete.
func incompleteTail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < 0x80 || c >= 0xc0 {
			// A lead byte (or ASCII): the tail from it is incomplete when
			// it is a valid prefix shorter than its sequence.
			if c < 0xc2 {
				return 0
			}
			tail := b[len(b)-k:]
			if invalidLen(tail) == k && utf8.RuneLen(expectedRune(c)) > k {
				return k
			}
			return 0
		}
	}
	return 0
}

// expectedRune returns a rune whose encoding has the length the lead byte c
// announces.
func expectedRune(c byte) rune {
	switch {
	case c >= 0xf0:
		return 0x10000
	case c >= 0xe0:
		return 0x800
	default:
		return 0x80
	}
}

// StreamDecoder decodes ids one at a time for streaming output. It never
// returns part of a UTF-8 character: bytes that may still complete one wait
// for the next id. The concatenation of everything Add and Flush return is
// Decode of all the ids.
//
// For a SentencePiece-style tokenizer a run of <0xNN> byte tokens is held
// until the run ends, since the reference decodes a run as one: valid
// UTF-8, or one U+FFFD per byte.
type StreamDecoder struct {
	t       *Tokenizer
	pending []byte
	strip   int // metaspace: leading spaces still to take off
}

// NewStreamDecoder returns a decoder with nothing pending.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	d := &StreamDecoder{t: t}
	if t.spm != nil {
		d.strip = t.spm.strip
	}
	return d
}

// Add decodes one more id and returns the text now complete.
func (d *StreamDecoder) Add(id int) string {
	if c := d.t.spm; c != nil {
		if by, ok := c.byteTok[id]; ok {
			d.pending = append(d.pending, by)
			return ""
		}
		tok, ok := d.t.IDToken(id)
		if !ok {
			return ""
		}
		return d.stripped(d.flushRun() + strings.ReplaceAll(string(tok), metaspace, " "))
	}
	if tok, ok := d.t.IDToken(id); ok {
		d.pending = append(d.pending, tok...)
	}
	keep := incompleteTail(d.pending)
	if keep == len(d.pending) {
		return ""
	}
	s := toValidUTF8(d.pending[:len(d.pending)-keep])
	d.pending = append(d.pending[:0], d.pending[len(d.pending)-keep:]...)
	return s
}

// Flush returns what is pending (an incomplete character becomes U+FFFD)
// and leaves the decoder empty.
func (d *StreamDecoder) Flush() string {
	if d.t.spm != nil {
		return d.stripped(d.flushRun())
	}
	s := toValidUTF8(d.pending)
	d.pending = d.pending[:0]
	return s
}

// flushRun decodes the held run of byte tokens.
func (d *StreamDecoder) flushRun() string {
	var s string
	if utf8.Valid(d.pending) {
		s = string(d.pending)
	} else {
		s = strings.Repeat("\uFFFD", len(d.pending))
	}
	d.pending = d.pending[:0]
	return s
}

// stripped takes the decoder's leading spaces off the start of the text.
func (d *StreamDecoder) stripped(s string) string {
	for d.strip > 0 && s != "" {
		if s[0] != ' ' {
			d.strip = 0
			break
		}
		s = s[1:]
		d.strip--
	}
	return s
}

// kimiChunks cuts text as Kimi's tokenizer does before tiktoken sees it:
// into pieces of at most 400,000 characters, each cut again wherever a run
// of whitespace or of non-whitespace (Python's str.isspace) passes 25,000
// characters. Only texts that long are affected.
func kimiChunks(text string) []string {
	const maxChars, maxRun = 400_000, 25_000
	if len(text) <= maxRun {
		return []string{text}
	}
	var out []string
	for len(text) > 0 {
		// The next 400,000 characters.
		end, n := 0, 0
		for end < len(text) && n < maxChars {
			_, w := utf8.DecodeRuneInString(text[end:])
			end += w
			n++
		}
		chunk := text[:end]
		text = text[end:]
		r0, _ := utf8.DecodeRuneInString(chunk)
		space, run, start := pySpace(r0), 0, 0
		for i, r := range chunk {
			if s := pySpace(r); s != space {
				space, run = s, 1
				continue
			}
			run++
			if run > maxRun {
				out = append(out, chunk[start:i])
				start, run = i, 1
			}
		}
		out = append(out, chunk[start:])
	}
	return out
}
