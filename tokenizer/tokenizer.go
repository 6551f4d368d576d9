package tokenizer

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Tokenizer turns text into a model's token ids and back. It is safe for
// concurrent use once loaded.
type Tokenizer struct {
	// Exactly one model: tiktoken's ranks, or a Hugging Face BPE.
	ranks *rankBPE
	hf    *mergeBPE

	// The tiktoken split, or the Hugging Face pre-tokenizer steps.
	split matcher
	steps []preStep
	kimi  bool // Kimi's chunking of long texts before tiktoken sees them
	bytes bool // the Hugging Face model is byte-level
	// byteID is the id of each byte: its byte-level token, or its <0xNN>
	// fallback token; -1 for none.
	byteID [256]int
	// hfVocab maps a token's text to its id; a model that is not
	// byte-level starts a word from one token per character, or the
	// character's byte tokens (byteFallback), or unk (-1 for none), which
	// fuseUnk keeps to one per run.
	hfVocab      map[string]int
	byteFallback bool
	unk          int
	fuseUnk      bool
	spm          *spmConfig // SentencePiece-style metaspace BPE
	nfc          bool       // the NFC normalizer

	added []addedToken // matched in the text before the model sees it
	// byText finds an added token by its text; lengths holds, by first
	// byte, the lengths of the added tokens that start with it, longest
	// first, so that a position costs a lookup per distinct length.
	byText  map[string]int
	lengths [256][]int

	prefix, suffix []int // the post-processor's ids around a sequence

	tokens  [][]byte // id → the bytes it decodes to
	special []bool   // id → whether it is a special token
	cleanUp bool     // transformers' clean_up_tokenization_spaces

	bos, eos, pad int // -1 when there is none
	eosAll        []int
	vocabSize     int

	bosToken, eosToken string
	chatTemplate       string
}

// addedToken is a token the text is split on before the model sees it: a
// tiktoken special token, or a Hugging Face added token with its flags.
// (Every token is matched on the text as given: the normalizers this
// package has leave the ASCII of special tokens as it is.)
type addedToken struct {
	content    string
	id         int
	special    bool
	lstrip     bool
	rstrip     bool
	singleWord bool
}

// preStep is one step of a Hugging Face pre-tokenizer: it splits a piece
// into pieces.
type preStep struct {
	m           matcher // split by this pattern (gaps kept)
	prefixSpace bool    // byte-level add_prefix_space
	digits      int     // Digits pre-tokenizer: 1 individual, 2 runs
}

func (t *Tokenizer) indexAdded() {
	t.byText = make(map[string]int, len(t.added))
	for i := range t.lengths {
		t.lengths[i] = nil
	}
	for i, a := range t.added {
		if a.content == "" {
			continue
		}
		if _, dup := t.byText[a.content]; !dup {
			t.byText[a.content] = i
		}
		b := a.content[0]
		if !slices.Contains(t.lengths[b], len(a.content)) {
			t.lengths[b] = append(t.lengths[b], len(a.content))
		}
	}
	for b := range t.lengths {
		slices.Sort(t.lengths[b])
		slices.Reverse(t.lengths[b])
	}
}

// Encode returns the ids of text as the model's own tokenizer gives them by
// default (mlx-lm's tokenizer.encode(text)): special tokens written in the
// text become their ids, and the tokenizer's BOS (or other post-processor
// tokens) is added only when the tokenizer adds one.
func (t *Tokenizer) Encode(text string) []int {
	out := append([]int(nil), t.prefix...)
	out = t.encode(text, true, out)
	return append(out, t.suffix...)
}

// EncodePlain returns the ids of text read as plain text: a special token
// written in it is encoded like any other text, and nothing is added around
// it. (A Hugging Face added token that is not special is still matched, as
// the reference does.)
func (t *Tokenizer) EncodePlain(text string) []int {
	return t.encode(text, false, nil)
}

// PromptIDs encodes a user's prompt as mlx_lm generate does: through the
// chat template as one user message (with the generation prompt) when the
// model has a template and raw is false, else as Encode does.
func (t *Tokenizer) PromptIDs(prompt string, raw bool) ([]int, error) {
	if raw || !t.HasChatTemplate() {
		return t.Encode(prompt), nil
	}
	rendered, err := t.ApplyChatTemplate([]Message{{Role: "user", Content: prompt}}, true)
	if err != nil {
		return nil, err
	}
	return t.EncodePrompt(rendered), nil
}

// EncodePrompt returns the ids of a rendered chat prompt as
// apply_chat_template(..., tokenize=True) gives them: special tokens written
// in the text become their ids and nothing is added around it, since the
// template wrote its own BOS.
func (t *Tokenizer) EncodePrompt(prompt string) []int {
	return t.encode(prompt, true, nil)
}

func (t *Tokenizer) encode(text string, specials bool, out []int) []int {
	var scratch []part
	var syms []int
	if t.kimi {
		for _, chunk := range kimiChunks(text) {
			out = t.encodeAdded(chunk, specials, out, &scratch, &syms)
		}
		return out
	}
	return t.encodeAdded(text, specials, out, &scratch, &syms)
}

// encodeAdded splits text on the added tokens (leftmost, longest first) and
// encodes the text between them.
func (t *Tokenizer) encodeAdded(text string, specials bool, out []int, scratch *[]part, syms *[]int) []int {
	last := 0
	for i := 0; i < len(text); i++ {
		for _, n := range t.lengths[text[i]] {
			if i+n > len(text) {
				continue
			}
			ai, ok := t.byText[text[i:i+n]]
			if !ok {
				continue
			}
			a := &t.added[ai]
			if a.special && !specials {
				continue
			}
			start, end := i, i+n
			if a.singleWord && !singleWord(text, start, end) {
				continue
			}
			if a.lstrip {
				for start > last {
					r, n := utf8.DecodeLastRuneInString(text[last:start])
					if !isWhiteSpace(r) {
						break
					}
					start -= n
				}
			}
			if a.rstrip {
				for end < len(text) {
					r, n := utf8.DecodeRuneInString(text[end:])
					if !isWhiteSpace(r) {
						break
					}
					end += n
				}
			}
			out = t.encodeText(text[last:start], last, out, scratch, syms)
			out = append(out, a.id)
			last = end
			i = end - 1
			break
		}
	}
	return t.encodeText(text[last:], last, out, scratch, syms)
}

func singleWord(s string, start, end int) bool {
	if start > 0 {
		r, _ := utf8.DecodeLastRuneInString(s[:start])
		if isWordChar(r) {
			return false
		}
	}
	if end < len(s) {
		r, _ := utf8.DecodeRuneInString(s[end:])
		if isWordChar(r) {
			return false
		}
	}
	return true
}

// encodeText encodes text that holds no added token; offset is where it
// starts in the text Encode was given.
func (t *Tokenizer) encodeText(text string, offset int, out []int, scratch *[]part, syms *[]int) []int {
	if text == "" {
		return out
	}
	if t.nfc {
		text = nfc(text)
	}
	if t.spm != nil {
		t.spm.pieces(text, offset, func(p string) {
			out = t.encodeWord(p, out, syms)
		})
		return out
	}
	if t.ranks != nil {
		splitMatches(t.split, text, false, func(p string) {
			out = t.ranks.encode(p, out, scratch)
		})
		return out
	}
	t.preTokenize(text, 0, func(p string) {
		out = t.encodeWord(p, out, syms)
	})
	return out
}

// preTokenize runs the pre-tokenizer steps from step k on piece.
func (t *Tokenizer) preTokenize(piece string, k int, fn func(string)) {
	if k == len(t.steps) {
		if piece != "" {
			fn(piece)
		}
		return
	}
	st := &t.steps[k]
	next := func(p string) { t.preTokenize(p, k+1, fn) }
	switch {
	case st.prefixSpace && piece != "" && piece[0] != ' ':
		piece = " " + piece
		if st.m == nil {
			next(piece)
			return
		}
	case st.digits != 0:
		splitDigits(piece, st.digits == 1, next)
		return
	}
	if st.m == nil {
		next(piece)
		return
	}
	splitMatches(st.m, piece, true, next)
}

func splitDigits(s string, individual bool, fn func(string)) {
	// Rust's char::is_numeric: any \p{N}, not only ASCII digits.
	last := 0
	for i := 0; i < len(s); {
		c, n := classAt(s, i)
		if c&cNumber == 0 {
			i += n
			continue
		}
		e := i + n
		if !individual {
			e = runEnd(s, e, cNumber, 0)
		}
		if last < i {
			fn(s[last:i])
		}
		fn(s[i:e])
		last, i = e, e
	}
	if last < len(s) {
		fn(s[last:])
	}
}

// encodeWord runs the Hugging Face BPE model on one pre-tokenized piece.
func (t *Tokenizer) encodeWord(p string, out []int, syms *[]int) []int {
	b := t.hf
	if b.ignoreMerges {
		if id, ok := b.vocab[p]; ok {
			return append(out, id)
		}
	}
	s := (*syms)[:0]
	if t.bytes {
		for i := 0; i < len(p); i++ {
			if id := t.byteID[p[i]]; id >= 0 {
				s = append(s, id)
			} else if t.unk >= 0 {
				s = append(s, t.unk)
			}
		}
	} else {
		unk := false
		for i := 0; i < len(p); {
			_, n := utf8.DecodeRuneInString(p[i:])
			if id, ok := t.hfVocab[p[i:i+n]]; ok {
				s = append(s, id)
				unk = false
			} else if t.byteFallback {
				for k := i; k < i+n; k++ {
					s = append(s, t.byteID[p[k]])
				}
				unk = false
			} else if t.unk >= 0 && !(unk && t.fuseUnk) {
				s = append(s, t.unk)
				unk = true
			}
			i += n
		}
	}
	s = b.merge(s)
	*syms = s
	return append(out, s...)
}

// Decode returns the text of ids, special tokens included, as the
// reference's decode(ids) gives it: bytes that are not valid UTF-8 become
// U+FFFD, one per maximal invalid sequence. An id the tokenizer does not
// have decodes to nothing.
func (t *Tokenizer) Decode(ids []int) string {
	if t.spm != nil {
		s := t.spm.decode(t, ids)
		if t.cleanUp {
			s = cleanUpSpaces(s)
		}
		return s
	}
	var b []byte
	for _, id := range ids {
		if id >= 0 && id < len(t.tokens) {
			b = append(b, t.tokens[id]...)
		}
	}
	s := toValidUTF8(b)
	if t.cleanUp {
		s = cleanUpSpaces(s)
	}
	return s
}

// cleanUpSpaces is transformers' clean_up_tokenization.
func cleanUpSpaces(s string) string {
	return strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'",
		" n't", "n't", " 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re").Replace(s)
}

// IDToken returns the text of one token id, special or not, and false for
// an id the tokenizer does not have.
func (t *Tokenizer) IDToken(id int) ([]byte, bool) {
	if id < 0 || id >= len(t.tokens) || t.tokens[id] == nil {
		return nil, false
	}
	return t.tokens[id], true
}

// IsSpecial reports whether id is a special token (BOS, EOS, a chat
// marker, a reserved id).
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// TokenID returns the id of a special or added token by its text.
func (t *Tokenizer) TokenID(token string) (int, bool) {
	if i, ok := t.byText[token]; ok {
		return t.added[i].id, true
	}
	return -1, false
}

// EOS returns every id generation should stop on, as mlx-lm gathers them:
// the tokenizer's eos_token and the eos_token_id of config.json and
// generation_config.json, each an int or a list.
func (t *Tokenizer) EOS() []int { return append([]int(nil), t.eosAll...) }

// BOS returns the beginning-of-sequence id, when the tokenizer has one.
func (t *Tokenizer) BOS() (int, bool) { return t.bos, t.bos >= 0 }

// AddsBOS reports whether Encode puts the BOS id in front of the text.
func (t *Tokenizer) AddsBOS() bool {
	return t.bos >= 0 && len(t.prefix) > 0 && t.prefix[0] == t.bos
}

// VocabSize returns the number of ids the tokenizer knows: one more than
// the largest, reserved and special ids included. A model's embedding may
// have more rows.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// HasChatTemplate reports whether the model directory has a chat template.
func (t *Tokenizer) HasChatTemplate() bool { return t.chatTemplate != "" }

// ChatTemplate returns the model's chat template text, "" when it has none.
func (t *Tokenizer) ChatTemplate() string { return t.chatTemplate }
