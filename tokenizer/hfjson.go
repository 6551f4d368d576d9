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
	t := newTokenizer()
	if err := t.parseNormalizer(f.Normalizer); err != nil {
		return nil, unsupported("%v", err)
	}
	// The pre-tokenizer decides whether the model is byte-level.
	if !isNull(f.PreTokenizer) || t.spm == nil {
		if err := t.parsePreTokenizer(f.PreTokenizer); err != nil {
			return nil, unsupported("%v", err)
		}
	}
	switch {
	case t.bytes && t.spm != nil:
		return nil, unsupported("a byte-level pre-tokenizer after a metaspace normalizer")
	case !t.bytes && t.spm == nil:
		return nil, unsupported("neither a byte-level nor a metaspace (SentencePiece-style) BPE")
	}
	if err := t.checkDecoder(f.Decoder); err != nil {
		return nil, unsupported("%v", err)
	}
	if t.spm != nil {
		t.byteFallback = m.ByteFallback
		t.fuseUnk = m.FuseUnk
		t.spm.byteTok = map[int]byte{}
		for b := 0; b < 256; b++ {
			if id, ok := m.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
				t.byteID[b] = id
				t.spm.byteTok[id] = byte(b)
			} else if t.byteFallback {
				return nil, fmt.Errorf("%w: %s: byte_fallback without the token <0x%02X>", ErrFormat, path, b)
			}
		}
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
		if t.spm != nil {
			raw[tok] = id
			t.tokens[id] = []byte(tok)
			continue
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
			lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord})
		if bs, ok := byteLevelDecode(a.Content); ok && t.spm == nil {
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

// parseNormalizer accepts no normalizer, NFC (Qwen), or the one of
// SentencePiece-style tokenizers: prepend "▁" and replace every space with
// it.
func (t *Tokenizer) parseNormalizer(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if c.Type == "NFC" {
		t.nfc = true
		return nil
	}
	if c.Type != "Sequence" {
		return fmt.Errorf("normalizer %q", c.Type)
	}
	prepend, replace := false, false
	for _, n := range c.Normalizers {
		var x struct {
			Type    string `json:"type"`
			Prepend string `json:"prepend"`
			Content string `json:"content"`
			Pattern struct {
				String *string `json:"String"`
			} `json:"pattern"`
		}
		if err := json.Unmarshal(n, &x); err != nil {
			return err
		}
		switch {
		case x.Type == "Prepend" && x.Prepend == metaspace:
			prepend = true
		case x.Type == "Replace" && x.Pattern.String != nil && *x.Pattern.String == " " && x.Content == metaspace:
			replace = true
		case x.Type == "NFC":
			t.nfc = true
		default:
			return fmt.Errorf("normalizer %q", x.Type)
		}
	}
	switch {
	case prepend && replace:
		t.spm = &spmConfig{prepend: prependAlways, legacy: true}
	case prepend || replace:
		return fmt.Errorf("a metaspace normalizer without both Prepend and Replace")
	}
	return nil
}

// checkDecoder accepts the decoder that undoes the pre-tokenizer: ByteLevel
// for byte-level models; for SentencePiece-style ones Replace("▁", " "),
// ByteFallback, Fuse and Strip(" ", 1, 0), the last when a "▁" was added.
func (t *Tokenizer) checkDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return fmt.Errorf("no decoder")
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if t.bytes {
		if c.Type == "ByteLevel" {
			return nil
		}
		if c.Type == "Sequence" && len(c.Decoders) == 1 {
			return t.checkDecoder(c.Decoders[0])
		}
		return fmt.Errorf("decoder %q (a byte-level model takes ByteLevel)", c.Type)
	}
	var types []string
	for _, d := range c.Decoders {
		var x struct {
			Type    string `json:"type"`
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
			Pattern struct {
				String *string `json:"String"`
			} `json:"pattern"`
		}
		if err := json.Unmarshal(d, &x); err != nil {
			return err
		}
		switch {
		case x.Type == "Replace" && x.Pattern.String != nil && *x.Pattern.String == metaspace && x.Content == " ":
		case x.Type == "ByteFallback", x.Type == "Fuse":
		case x.Type == "Strip" && x.Content == " " && x.Stop == 0:
			t.spm.strip = x.Start
		default:
			return fmt.Errorf("decoder %q in a metaspace decoder sequence", x.Type)
		}
		types = append(types, x.Type)
	}
	if c.Type != "Sequence" || strings.Join(types, ",") != "Replace,ByteFallback,Fuse,Strip" &&
		strings.Join(types, ",") != "Replace,ByteFallback,Fuse" {
		return fmt.Errorf("decoder %q %v (a metaspace model takes Replace, ByteFallback, Fuse, Strip)", c.Type, types)
	}
	return nil
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
	case "Metaspace":
		var x struct {
			Replacement   string `json:"replacement"`
			PrependScheme string `json:"prepend_scheme"`
			Split         bool   `json:"split"`
		}
		if err := json.Unmarshal(raw, &x); err != nil {
			return err
		}
		if x.Replacement != metaspace {
			return fmt.Errorf("metaspace replacement %q", x.Replacement)
		}
		sc := map[string]int{"always": prependAlways, "first": prependFirst, "never": prependNever}
		p, ok := sc[x.PrependScheme]
		if !ok {
			return fmt.Errorf("metaspace prepend_scheme %q", x.PrependScheme)
		}
		if t.spm != nil || len(t.steps) > 0 {
			return fmt.Errorf("a metaspace pre-tokenizer with other steps")
		}
		t.spm = &spmConfig{prepend: p, split: x.Split}
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
