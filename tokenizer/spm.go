package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// SentencePiece-style BPE (Llama 2, Mistral, TinyLlama): spaces are the
// metaspace "▁", a word starts with one, the model merges characters and
// falls back to <0xNN> byte tokens for a character it lacks.

const metaspace = "▁"

const (
	prependAlways = iota
	prependFirst
	prependNever
)

type spmConfig struct {
	prepend int  // when a "▁" goes in front of a text segment
	legacy  bool // the Prepend normalizer: always, even before a space
	split   bool // the Metaspace pre-tokenizer splits before each "▁"
	strip   int  // the decoder's Strip: leading spaces taken off the text
	byteTok map[int]byte
}

// spmPieces normalizes one text segment (the text between added tokens,
// starting at offset in the whole text) and calls fn with its pieces.
func (c *spmConfig) pieces(seg string, offset int, fn func(string)) {
	s := strings.ReplaceAll(seg, " ", metaspace)
	switch {
	case c.legacy:
		s = metaspace + s
	case c.prepend == prependAlways || c.prepend == prependFirst && offset == 0:
		if !strings.HasPrefix(s, metaspace) {
			s = metaspace + s
		}
	}
	if !c.split {
		fn(s)
		return
	}
	start := 0
	for i := len(metaspace); i < len(s); {
		if strings.HasPrefix(s[i:], metaspace) {
			fn(s[start:i])
			start = i
			i += len(metaspace)
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	fn(s[start:])
}

// decode is the decoder chain Replace("▁", " "), ByteFallback, Fuse,
// Strip: byte tokens in a row are one UTF-8 text, or one U+FFFD per byte
// when they are not valid.
func (c *spmConfig) decode(t *Tokenizer, ids []int) string {
	var b strings.Builder
	var run []byte
	flush := func() {
		if utf8.Valid(run) {
			b.Write(run)
		} else {
			b.WriteString(strings.Repeat("\uFFFD", len(run)))
		}
		run = run[:0]
	}
	for _, id := range ids {
		if id < 0 || id >= len(t.tokens) || t.tokens[id] == nil {
			continue
		}
		if by, ok := c.byteTok[id]; ok {
			run = append(run, by)
			continue
		}
		flush()
		b.WriteString(strings.ReplaceAll(string(t.tokens[id]), metaspace, " "))
	}
	flush()
	s := b.String()
	for k := 0; k < c.strip && strings.HasPrefix(s, " "); k++ {
		s = s[1:]
	}
	return s
}
