package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fuzzTokenizer is a Kimi-layout tokenizer built in Go, with no reference
// at hand: every byte ranked, then a few hundred multi-byte tokens, then a
// special block. Its ids are arbitrary; the fuzz checks only what holds for
// any vocabulary.
func fuzzTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	ranks := map[string]int{}
	add := func(s string) {
		if _, ok := ranks[s]; !ok {
			ranks[s] = len(ranks)
		}
	}
	for b := 0; b < 256; b++ {
		add(string([]byte{byte(b)}))
	}
	for _, w := range strings.Fields("th he in er an re on at en nd the and ing ion tion 's 're 'll don") {
		add(w)
		add(" " + w)
	}
	for _, w := range []string{"你", "好", "你好", "안", "녕", "안녕", "  ", "\n\n", "é", "ें", "👍", "\u200d", "😀"} {
		for i := 2; i <= len(w); i++ {
			add(w[:i])
		}
	}
	tok := newTokenizer()
	tok.ranks = &rankBPE{ranks: ranks}
	tok.kimi = true
	var err error
	tok.split, err = matcherFor(PatternKimi)
	require.NoError(t, err)
	base := len(ranks)
	tok.tokens = make([][]byte, base+4)
	tok.special = make([]bool, base+4)
	for s, id := range ranks {
		tok.tokens[id] = []byte(s)
	}
	for i, s := range []string{"[BOS]", "[EOS]", "<|im_end|>", "<|im_middle|>"} {
		tok.tokens[base+i] = []byte(s)
		tok.special[base+i] = true
		tok.added = append(tok.added, addedToken{content: s, id: base + i, special: true})
	}
	tok.vocabSize = base + 4
	tok.indexAdded()
	return tok
}

// fullCover are the patterns whose alternatives between them match every
// rune, so that tiktoken's find-all drops nothing.
var fullCover = []string{PatternKimi, PatternGPT2, PatternCL100K, PatternCL100KPossessive, PatternQwen2, PatternO200K}

// partCover are the patterns of Hugging Face splits, whose gaps are pieces.
var partCover = []string{PatternDigits3, PatternDeepSeekCJK, PatternDeepSeekWords}

func FuzzEncode(f *testing.F) {
	for _, s := range corpus(7, 200, []string{"[BOS]", "<|im_end|>"}) {
		f.Add(s)
	}
	f.Add("\xe4\xb8")                   // a character cut short
	f.Add("a\xffb\xc0\x80\xed\xa0\x80") // bytes that are never UTF-8
	tok := fuzzTokenizer(f)
	var matchers []matcher
	for _, p := range append(fullCover, partCover...) {
		m, err := matcherFor(p)
		require.NoError(f, err)
		matchers = append(matchers, m)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		plain := tok.EncodePlain(s)
		for i, m := range matchers {
			var b strings.Builder
			splitMatches(m, s, i >= len(fullCover), func(p string) {
				if p == "" {
					t.Fatalf("pattern %d: an empty piece of %q", i, s)
				}
				b.WriteString(p)
			})
			if b.String() != s {
				t.Fatalf("pattern %d: pieces of %q add up to %q", i, s, b.String())
			}
		}
		if !utf8.ValidString(s) {
			_ = tok.Decode(ids) // must not panic
			return
		}
		if got := tok.Decode(plain); got != s {
			t.Fatalf("Decode(EncodePlain(%q)) = %q", s, got)
		}
		if got := tok.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
		d := tok.NewStreamDecoder()
		var b strings.Builder
		for _, id := range plain {
			out := d.Add(id)
			if !utf8.ValidString(out) {
				t.Fatalf("stream of %q returned %q, not whole characters", s, out)
			}
			b.WriteString(out)
		}
		b.WriteString(d.Flush())
		if b.String() != s {
			t.Fatalf("stream of %q gave %q", s, b.String())
		}
	})
}

func TestToValidUTF8ReplacesMaximalSubparts(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"valid text is unchanged", "héllo 你好", "héllo 你好"},
		{"a truncated three-byte character is one replacement", "a\xe4\xb8b", "a\uFFFDb"},
		{"each stray continuation byte is its own replacement", "\x80\x80", "\uFFFD\uFFFD"},
		{"an overlong lead is replaced byte by byte", "\xc0\x80", "\uFFFD\uFFFD"},
		{"a surrogate is three replacements", "\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"a four-byte prefix then ASCII", "\xf0\x9f\x98z", "\uFFFDz"},
		{"a lead byte past U+10FFFF is replaced alone", "\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, toValidUTF8([]byte(tt.in)))
		})
	}
}

func TestHeapMergeAgreesWithScan(t *testing.T) {
	tok := fuzzTokenizer(t)
	words := []string{"the", "안녕", "你好", "ing", "x", " ", "é", "👍", "and", "tion"}
	r := uint64(1)
	for n := 0; n < 300; n++ {
		var b strings.Builder
		for b.Len() < heapMergeFrom+n {
			r = r*6364136223846793005 + 1442695040888963407
			b.WriteString(words[(r>>33)%uint64(len(words))])
		}
		piece := b.String()
		var scratch []part
		// The scan, forced on a long piece.
		want := tok.ranks.scan(piece, nil, &scratch)
		assert.Equal(t, want, tok.ranks.encodeLong(piece, nil), "piece %q", piece)
	}
}

func TestEncodeIsSafeForConcurrentUse(t *testing.T) {
	tok := fuzzTokenizer(t)
	texts := corpus(11, 200, []string{"[BOS]", "<|im_end|>"})
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i] = tok.Encode(s)
	}
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i, s := range texts {
				if got := tok.Encode(s); !assert.ObjectsAreEqual(want[i], got) {
					errs <- s
					return
				}
			}
			errs <- ""
		}()
	}
	for g := 0; g < 4; g++ {
		assert.Empty(t, <-errs, "a goroutine encoded this text differently")
	}
}
