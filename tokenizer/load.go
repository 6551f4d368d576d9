package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// kimiReserved is the size of Kimi's block of special ids when config.json
// does not say (Kimi K2's 163,840 − 163,584).
const kimiReserved = 256

// Load reads the tokenizer of a model directory: tokenizer.json (with
// tokenizer_config.json beside it when present), or Kimi's layout, a
// tiktoken.model with a tokenizer_config.json whose tokenizer_class is
// TikTokenTokenizer. config.json and generation_config.json, when present,
// give the vocabulary size (Kimi's reserved block) and more EOS ids.
func Load(dir string) (*Tokenizer, error) {
	var cfg tokenizerConfig
	if err := readJSON(filepath.Join(dir, "tokenizer_config.json"), &cfg); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var model modelConfig
	if err := readJSON(filepath.Join(dir, "config.json"), &model); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var gen modelConfig
	if err := readJSON(filepath.Join(dir, "generation_config.json"), &gen); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var t *Tokenizer
	var err error
	tj := filepath.Join(dir, "tokenizer.json")
	tm := filepath.Join(dir, "tiktoken.model")
	switch {
	case cfg.TokenizerClass == "TikTokenTokenizer" || (fileExists(tm) && !fileExists(tj)):
		if cfg.TokenizerClass != "TikTokenTokenizer" {
			return nil, fmt.Errorf("%w: %s has tiktoken.model but tokenizer_config.json's tokenizer_class is %q, not TikTokenTokenizer", ErrUnsupported, dir, cfg.TokenizerClass)
		}
		t, err = loadKimi(tm, &cfg, model.VocabSize)
	case fileExists(tj):
		t, err = loadHF(tj)
	default:
		return nil, fmt.Errorf("tokenizer: %s has neither tokenizer.json nor tiktoken.model: pass a model directory: %w", dir, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	if err := t.configure(&cfg, &model, &gen); err != nil {
		return nil, err
	}
	return t, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
	}
	return nil
}

// tokenString is a token in tokenizer_config.json: a string or an object
// with "content".
type tokenString string

func (s *tokenString) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = tokenString(str)
		return nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	*s = tokenString(obj.Content)
	return nil
}

// intList is an int or a list of ints (eos_token_id).
type intList []int

func (l *intList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var one int
	if err := json.Unmarshal(b, &one); err == nil {
		*l = intList{one}
		return nil
	}
	var many []int
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*l = many
	return nil
}

// chatTemplateField is a chat_template: a string, or a list of named
// templates of which "default" is the one used.
type chatTemplateField string

func (c *chatTemplateField) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*c = chatTemplateField(str)
		return nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(b, &named); err != nil {
		return err
	}
	for _, n := range named {
		if n.Name == "default" {
			*c = chatTemplateField(n.Template)
		}
	}
	return nil
}

type addedTokenJSON struct {
	ID         *int   `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type tokenizerConfig struct {
	TokenizerClass    string                    `json:"tokenizer_class"`
	BOSToken          tokenString               `json:"bos_token"`
	EOSToken          tokenString               `json:"eos_token"`
	PadToken          tokenString               `json:"pad_token"`
	AddedTokens       map[string]addedTokenJSON `json:"added_tokens_decoder"`
	ChatTemplate      chatTemplateField         `json:"chat_template"`
	CleanUpTokenSpace *bool                     `json:"clean_up_tokenization_spaces"`
}

type modelConfig struct {
	VocabSize  int     `json:"vocab_size"`
	EOSTokenID intList `json:"eos_token_id"`
	BOSTokenID intList `json:"bos_token_id"`
}

// loadKimi reads Kimi's tiktoken.model: one "base64-token rank" per line.
// The ids after the last rank, up to vocabSize, are special: named in
// added_tokens_decoder, or <|reserved_token_ID|>.
func loadKimi(path string, cfg *tokenizerConfig, vocabSize int) (*Tokenizer, error) {
	ranks, err := readTiktokenFile(path)
	if err != nil {
		return nil, err
	}
	base := len(ranks)
	total := base + kimiReserved
	if vocabSize > 0 {
		if vocabSize < base {
			return nil, fmt.Errorf("%w: config.json vocab_size %d is smaller than tiktoken.model's %d ranks", ErrFormat, vocabSize, base)
		}
		total = vocabSize
	}
	t := newTokenizer()
	t.ranks = &rankBPE{ranks: ranks}
	t.kimi = true
	t.split, _ = matcherFor(PatternKimi)
	t.tokens = make([][]byte, total)
	t.special = make([]bool, total)
	for tok, id := range ranks {
		t.tokens[id] = []byte(tok)
	}
	named := map[int]string{}
	for k, a := range cfg.AddedTokens {
		id, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("%w: added_tokens_decoder key %q is not an id", ErrFormat, k)
		}
		if id < base || id >= total {
			return nil, fmt.Errorf("%w: added token %q has id %d outside the special block [%d, %d)", ErrFormat, a.Content, id, base, total)
		}
		named[id] = a.Content
	}
	for id := base; id < total; id++ {
		name, ok := named[id]
		if !ok {
			name = fmt.Sprintf("<|reserved_token_%d|>", id)
		}
		t.tokens[id] = []byte(name)
		t.special[id] = true
		t.added = append(t.added, addedToken{content: name, id: id, special: true})
	}
	t.vocabSize = total
	t.indexAdded()
	return t, nil
}

func readTiktokenFile(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ranks := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) == 0 {
			continue
		}
		sp := bytes.IndexByte(l, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("%w: %s line %d: want \"base64-token rank\"", ErrFormat, path, line)
		}
		tok, err := base64.StdEncoding.DecodeString(string(l[:sp]))
		if err != nil {
			return nil, fmt.Errorf("%w: %s line %d: token: %v", ErrFormat, path, line, err)
		}
		rank, err := strconv.Atoi(string(bytes.TrimSpace(l[sp+1:])))
		if err != nil || rank < 0 {
			return nil, fmt.Errorf("%w: %s line %d: rank %q is not a non-negative integer", ErrFormat, path, line, l[sp+1:])
		}
		if _, dup := ranks[string(tok)]; dup {
			return nil, fmt.Errorf("%w: %s line %d: token %q listed twice", ErrFormat, path, line, tok)
		}
		ranks[string(tok)] = rank
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
	}
	// The ranks must be 0..n-1 and every byte must have one, or tiktoken's
	// merge could reach a piece it cannot encode.
	seen := make([]bool, len(ranks))
	for _, r := range ranks {
		if r >= len(ranks) || seen[r] {
			return nil, fmt.Errorf("%w: %s: ranks are not 0..%d, each once", ErrFormat, path, len(ranks)-1)
		}
		seen[r] = true
	}
	for b := 0; b < 256; b++ {
		if _, ok := ranks[string([]byte{byte(b)})]; !ok {
			return nil, fmt.Errorf("%w: %s: byte 0x%02x has no rank", ErrFormat, path, b)
		}
	}
	return ranks, nil
}

func newTokenizer() *Tokenizer {
	buildClassTable()
	t := &Tokenizer{bos: -1, eos: -1, pad: -1, unk: -1}
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	return t
}

// configure applies tokenizer_config.json, config.json and
// generation_config.json: the named special tokens, EOS ids and the chat
// template.
func (t *Tokenizer) configure(cfg *tokenizerConfig, model, gen *modelConfig) error {
	look := func(name tokenString) int {
		if name == "" {
			return -1
		}
		if id, ok := t.TokenID(string(name)); ok {
			return id
		}
		if t.hf != nil {
			if id, ok := t.hfVocab[string(name)]; ok {
				return id
			}
		}
		return -1
	}
	t.bosToken, t.eosToken = string(cfg.BOSToken), string(cfg.EOSToken)
	t.bos, t.eos, t.pad = look(cfg.BOSToken), look(cfg.EOSToken), look(cfg.PadToken)
	if t.bos < 0 && len(model.BOSTokenID) == 1 {
		t.bos = model.BOSTokenID[0]
	}
	seen := map[int]bool{}
	add := func(id int) {
		if id >= 0 && !seen[id] {
			seen[id] = true
			t.eosAll = append(t.eosAll, id)
		}
	}
	add(t.eos)
	for _, id := range model.EOSTokenID {
		add(id)
	}
	for _, id := range gen.EOSTokenID {
		add(id)
	}
	sort.Ints(t.eosAll)
	if t.eos < 0 && len(t.eosAll) > 0 {
		t.eos = t.eosAll[0]
	}
	t.chatTemplate = string(cfg.ChatTemplate)
	if cfg.CleanUpTokenSpace != nil {
		t.cleanUp = *cfg.CleanUpTokenSpace
	}
	return nil
}
