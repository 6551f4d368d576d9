package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// The parts of a Hugging Face tokenizer.json this package reads.
type hfFile struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         struct {
		Type                    string          `json:"type"`
		Dropout                 *float64        `json:"dropout"`
		UnkToken                *string         `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		FuseUnk                 bool            `json:"fuse_unk"`
		ByteFallback            bool            `json:"byte_fallback"`
		IgnoreMerges            bool            `json:"ignore_merges"`
		Vocab                   map[string]int  `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
	} `json:"model"`
}

type hfComponent struct {
	Type string `json:"type"`
	// Sequence
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	Processors    []json.RawMessage `json:"processors"`
	Decoders      []json.RawMessage `json:"decoders"`
	Normalizers   []json.RawMessage `json:"normalizers"`
	// ByteLevel
	AddPrefixSpace bool  `json:"add_prefix_space"`
	UseRegex       *bool `json:"use_regex"`
	// Split
	Pattern struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
	// Digits
	IndividualDigits bool `json:"individual_digits"`
	// TemplateProcessing
	Single        []json.RawMessage `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
	// RobertaProcessing, BertProcessing: [token, id]
	Cls []json.RawMessage `json:"cls"`
	Sep []json.RawMessage `json:"sep"`
}

func isNull(m json.RawMessage) bool {
	s := strings.TrimSpace(string(m))
	return s == "" || s == "null"
}

// loadHF reads a tokenizer.json with a BPE model.
func loadHF(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f hfFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
	}
	unsupported := func(what string, args ...any) error {
		return fmt.Errorf("%w: %s: "+what, append([]any{ErrUnsupported, path}, args...)...)
	}
	m := &f.Model
	switch {
	case m.Type != "BPE" && m.Type != "":
		return nil, unsupported("model type %q (only BPE)", m.Type)
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, unsupported("BPE dropout %v", *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, unsupported("continuing_subword_prefix %q", *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, unsupported("end_of_word_suffix %q", *m.EndOfWordSuffix)
	}
	if err := checkNormalizer(f.Normalizer); err != nil {
		return nil, unsupported("%v", err)
	}
	t := newTokenizer()
	// The pre-tokenizer decides whether the model is byte-level.
	if err := t.parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, unsupported("%v", err)
	}
	if !t.bytes {
		return nil, unsupported("pre-tokenizer without a byte-level step (only byte-level BPE)")
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, unsupported("%v", err)
	}

	maxID := -1
	for _, id := range m.Vocab {
		maxID = max(maxID, id)
	}
	for _, a := range f.AddedTokens {
		if a.ID == nil {
			return nil, fmt.Errorf("%w: %s: added token %q has no id", ErrFormat, path, a.Content)
		}
		maxID = max(maxID, *a.ID)
	}
	t.tokens = make([][]byte, maxID+1)
	t.special = make([]bool, maxID+1)
	raw := make(map[string]int, len(m.Vocab))
	for tok, id := range m.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("%w: %s: token %q has negative id %d", ErrFormat, path, tok, id)
		}
		bs, ok := byteLevelDecode(tok)
		if ok {
			raw[string(bs)] = id
			if len(bs) == 1 {
				t.byteID[bs[0]] = id
			}
			t.tokens[id] = bs
		} else {
			t.tokens[id] = []byte(tok)
		}
	}
	t.hfVocab = m.Vocab
	if m.UnkToken != nil {
		if id, ok := m.Vocab[*m.UnkToken]; ok {
			t.unk = id
		}
	}
	merges, err := parseMerges(m.Merges)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
	}
	t.hf = &mergeBPE{vocab: raw, merges: make(map[uint64]merge, len(merges)), ignoreMerges: m.IgnoreMerges}
	for rank, mg := range merges {
		a, okA := m.Vocab[mg[0]]
		b, okB := m.Vocab[mg[1]]
		id, okC := m.Vocab[mg[0]+mg[1]]
		if !okA || !okB || !okC {
			return nil, fmt.Errorf("%w: %s: merge %d %q %q has a part or result not in the vocabulary", ErrFormat, path, rank, mg[0], mg[1])
		}
		k := pairKey(a, b)
		if _, dup := t.hf.merges[k]; !dup {
			t.hf.merges[k] = merge{rank: rank, id: id}
		}
	}
	for _, a := range f.AddedTokens {
		id := *a.ID
		t.added = append(t.added, addedToken{content: a.Content, id: id, special: a.Special,
			lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord, normalized: a.Normalized})
		if bs, ok := byteLevelDecode(a.Content); ok {
			t.tokens[id] = bs
		} else {
			t.tokens[id] = []byte(a.Content)
		}
		t.special[id] = a.Special
	}
	t.indexAdded()
	t.vocabSize = maxID + 1
	if err := t.parsePostProcessor(f.PostProcessor); err != nil {
		return nil, unsupported("%v", err)
	}
	return t, nil
}

func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("merge %d %q is not \"a b\"", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("merges are neither \"a b\" strings nor [a, b] pairs: %v", err)
	}
	return pairs, nil
}

func checkNormalizer(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if c.Type == "Sequence" && len(c.Normalizers) == 0 {
		return nil
	}
	return fmt.Errorf("normalizer %q", c.Type)
}

func checkDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return fmt.Errorf("no decoder (only ByteLevel)")
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if c.Type == "ByteLevel" {
		return nil
	}
	if c.Type == "Sequence" && len(c.Decoders) == 1 {
		return checkDecoder(c.Decoders[0])
	}
	return fmt.Errorf("decoder %q (only ByteLevel)", c.Type)
}

func (t *Tokenizer) parsePreTokenizer(raw json.RawMessage) error {
	if isNull(raw) {
		return fmt.Errorf("no pre-tokenizer")
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	switch c.Type {
	case "Sequence":
		for _, p := range c.PreTokenizers {
			if err := t.parsePreTokenizer(p); err != nil {
				return err
			}
		}
	case "ByteLevel":
		t.bytes = true
		st := preStep{prefixSpace: c.AddPrefixSpace}
		if c.UseRegex == nil || *c.UseRegex {
			st.m, _ = matcherFor(PatternGPT2)
		}
		if st.prefixSpace || st.m != nil {
			t.steps = append(t.steps, st)
		}
	case "Split":
		if c.Behavior != "Isolated" || c.Invert {
			return fmt.Errorf("split behavior %q invert %v (only Isolated)", c.Behavior, c.Invert)
		}
		if c.Pattern.Regex == nil {
			return fmt.Errorf("split on a string pattern")
		}
		m, err := matcherFor(*c.Pattern.Regex)
		if err != nil {
			return err
		}
		t.steps = append(t.steps, preStep{m: m})
	case "Digits":
		d := 2
		if c.IndividualDigits {
			d = 1
		}
		t.steps = append(t.steps, preStep{digits: d})
	default:
		return fmt.Errorf("pre-tokenizer %q", c.Type)
	}
	return nil
}

func (t *Tokenizer) parsePostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	switch c.Type {
	case "ByteLevel":
		return nil
	case "Sequence":
		for _, p := range c.Processors {
			if err := t.parsePostProcessor(p); err != nil {
				return err
			}
		}
		return nil
	case "TemplateProcessing":
		seen := false
		for _, item := range c.Single {
			var it struct {
				SpecialToken *struct{ ID string } `json:"SpecialToken"`
				Sequence     *struct{ ID string } `json:"Sequence"`
			}
			if err := json.Unmarshal(item, &it); err != nil {
				return err
			}
			switch {
			case it.Sequence != nil:
				seen = true
			case it.SpecialToken != nil:
				st, ok := c.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("template token %q has no ids", it.SpecialToken.ID)
				}
				if seen {
					t.suffix = append(t.suffix, st.IDs...)
				} else {
					t.prefix = append(t.prefix, st.IDs...)
				}
			}
		}
		return nil
	case "RobertaProcessing", "BertProcessing":
		id := func(pair []json.RawMessage) (int, error) {
			var n int
			if len(pair) != 2 {
				return 0, fmt.Errorf("%s token is not [token, id]", c.Type)
			}
			return n, json.Unmarshal(pair[1], &n)
		}
		cls, err := id(c.Cls)
		if err != nil {
			return err
		}
		sep, err := id(c.Sep)
		if err != nil {
			return err
		}
		t.prefix, t.suffix = []int{cls}, []int{sep}
		return nil
	}
	return fmt.Errorf("post-processor %q", c.Type)
}

// The byte-level alphabet: GPT-2 maps each byte to a printable character so
// that a vocabulary of bytes can be written as text.
var byteToChar [256]rune
var charToByte = map[rune]byte{}

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xa1 && b <= 0xac || b >= 0xae {
			byteToChar[b] = rune(b)
		} else {
			byteToChar[b] = rune(256 + n)
			n++
		}
		charToByte[byteToChar[b]] = byte(b)
	}
}

// byteLevelDecode returns the bytes a byte-level token stands for, and
// false when a character of it is outside the alphabet (then the
// reference's decoder keeps the token's own text).
func byteLevelDecode(tok string) ([]byte, bool) {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := charToByte[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}
