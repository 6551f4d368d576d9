package tokenizer

import (
	"math/rand/v2"
	"strings"
)

// The test corpus: strings of every kind the reference tokenizers must be
// matched on, made from a fixed seed so that a failure can be replayed.

var corpusWords = []string{
	// English with contractions and capitals.
	"Hello", "world", "THE", "Quick", "brown", "fox", "don't", "I'm", "we're", "they've",
	"she'll", "he'd", "it's", "DON'T", "We'RE", "O'Neil", "iPhone", "McDonald's", "HTTPServer",
	"camelCaseWord", "snake_case", "Ångström", "naïve", "café", "ſtraße's",
	// CJK, kana, Hangul (the seed speaks Korean), Arabic, Devanagari, Thai.
	"你好", "世界", "中华人民共和国", "漢字", "日本語", "ひらがな", "カタカナ", "ｶﾀｶﾅ", "東京タワー",
	"々", "〇", "⺀", "안녕하세요", "한국어", "서울특별시", "مرحبا", "العربية", "नमस्ते", "हिन्दी",
	"สวัสดี", "ภาษาไทย", "Здравствуйте", "Ελληνικά", "שלום",
	// Combining marks, emoji with ZWJ and modifiers.
	"e\u0301", "a\u0308\u0323", "\u0301\u0302", "n\u0303o", "👍", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇰🇷",
	// Digits and numbers.
	"0", "42", "1234567", "3.14159", "1,000,000", "٣٤٥", "१२३", "Ⅻ", "½", "²",
	// Code.
	"func", "main()", "{", "}", "x := 1", "if (a && b) {", "return nil;", "//", "/* c */",
	"<div class=\"x\">", "def f(x):", "print('hi')", "#include <stdio.h>", "a->b", "i++", "===",
	"https://example.org/path?q=1", "foo/bar/baz", "C:\\Users\\x",
	// Punctuation.
	"...", "!?", "—", "“quoted”", "«guillemets»", "'", "''", "'s", "'S", "'ll", "'ſ",
}

var corpusSpaces = []string{
	" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n ", "\u3000", "\u00a0", "\u2003",
	"\u200b", "\ufeff", "\u2028", "\u0085", "\u180e", "\v", "\f", " \u00a0 ", "\t\n",
}

// corpus returns n strings from seed, each naming a special token from
// specials now and then.
func corpus(seed uint64, n int, specials []string) []string {
	r := rand.New(rand.NewPCG(seed, 0x746f6b))
	pick := func(l []string) string { return l[r.IntN(len(l))] }
	out := make([]string, 0, n+16)
	// Fixed cases first: edges that a random mix may miss.
	out = append(out, "", " ", "a", "  a", "a  ", "a \n", "\n\n\n", " \r\n  \r\n x", "   \t  end",
		"trailing spaces   ", "x\u3000\u3000y", "안녕하세요, 세계! 저는 한국어로 말합니다.",
		"Don't STOP'S now I'M", "123456789012", "\u0301a", "a\u0301\u0301b",
		// Pieces long enough to merge through the heap, and runs past
		// Kimi's 25,000-character cut.
		strings.Repeat("안녕하세요", 100), strings.Repeat("thequickbrownfox", 50), strings.Repeat(" ", 500)+"x",
		strings.Repeat("x", 26000)+strings.Repeat(" ", 25001)+"y")
	for _, s := range specials {
		out = append(out, s, "x"+s+"y", " "+s+" ", s+s)
	}
	for len(out) < n {
		var b strings.Builder
		switch r.IntN(10) {
		case 0: // random code points from many scripts
			for k := r.IntN(20) + 1; k > 0; k-- {
				b.WriteRune(randomRune(r))
			}
		case 1: // random bytes of printable ASCII
			for k := r.IntN(30) + 1; k > 0; k-- {
				b.WriteByte(byte(0x20 + r.IntN(95)))
			}
		default: // words, spaces, punctuation, specials
			for k := r.IntN(12) + 1; k > 0; k-- {
				switch x := r.IntN(20); {
				case x < 11:
					b.WriteString(pick(corpusWords))
					if r.IntN(3) > 0 {
						b.WriteByte(' ')
					}
				case x < 16:
					b.WriteString(pick(corpusSpaces))
				case x < 18:
					b.WriteRune(randomRune(r))
				default:
					if len(specials) > 0 {
						b.WriteString(pick(specials))
					}
				}
			}
		}
		out = append(out, b.String())
	}
	return out
}

// corpusRanges are code point ranges assigned in Unicode 14 (the oldest
// Unicode of the references), so every engine classes them alike.
var corpusRanges = [][2]rune{
	{0x20, 0x7e}, {0xa0, 0x24f}, {0x300, 0x36f}, {0x370, 0x3ff}, {0x400, 0x4ff}, {0x5d0, 0x5ea},
	{0x620, 0x64a}, {0x660, 0x669}, {0x900, 0x97f}, {0xe01, 0xe3a}, {0xe40, 0xe5b}, {0x1100, 0x11ff},
	{0x2000, 0x206f}, {0x2190, 0x21ff}, {0x2e80, 0x2e99}, {0x3000, 0x303f}, {0x3041, 0x3096},
	{0x30a0, 0x30ff}, {0x4e00, 0x9fa5}, {0xac00, 0xd7a3}, {0xff01, 0xff9f}, {0x1f300, 0x1f5ff},
	{0x1f900, 0x1f9ff}, {0x1d400, 0x1d4ff},
}

func randomRune(r *rand.Rand) rune {
	g := corpusRanges[r.IntN(len(corpusRanges))]
	return g[0] + rune(r.IntN(int(g[1]-g[0]+1)))
}
