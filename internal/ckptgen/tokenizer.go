package ckptgen

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// byteRunes is the byte-level BPE alphabet: each byte is a printable rune,
// the printable ASCII and Latin-1 bytes as themselves and the rest shifted
// past U+0100, so that any text maps to vocabulary strings and back.
func byteRunes() [256]rune {
	var m [256]rune
	next := rune(256)
	for b := range 256 {
		switch {
		case b >= '!' && b <= '~', b >= 0xA1 && b <= 0xAC, b >= 0xAE && b <= 0xFF:
			m[b] = rune(b)
		default:
			m[b] = next
			next++
		}
	}
	return m
}

// tokenizerFiles returns tokenizer.json and tokenizer_config.json for a
// byte-level BPE tokenizer with no merges: every byte is one token (ids
// 0-255), then a begin and an end token, then one filler token per
// remaining id up to vocab ("<|t300|>"), so that any id a model can
// generate decodes. It needs no custom code, so transformers' fast
// tokenizer loads it offline.
func tokenizerFiles(vocabSize int) (tokenizerJSON, configJSON []byte) {
	vocab := make(map[string]int, vocabSize)
	for b, r := range byteRunes() {
		vocab[string(utf8.AppendRune(nil, r))] = b
	}
	for id := eosTokenID + 1; id < vocabSize; id++ {
		vocab[fmt.Sprintf("<|t%d|>", id)] = id
	}
	special := func(id int, content string) map[string]any {
		return map[string]any{"id": id, "content": content, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true}
	}
	vocab["<|bos|>"] = bosTokenID
	vocab["<|eos|>"] = eosTokenID
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	tok := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   []any{special(bosTokenID, "<|bos|>"), special(eosTokenID, "<|eos|>")},
		"normalizer":     nil,
		"pre_tokenizer":  byteLevel,
		"post_processor": nil,
		"decoder":        byteLevel,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": []any{},
		},
	}
	cfg := map[string]any{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"bos_token":                    "<|bos|>",
		"eos_token":                    "<|eos|>",
		"add_bos_token":                false,
		"add_eos_token":                false,
		"model_max_length":             262144,
		"clean_up_tokenization_spaces": false,
	}
	// Maps of strings, ints, bools and nils always encode.
	tokenizerJSON, _ = json.MarshalIndent(tok, "", " ")
	configJSON, _ = json.MarshalIndent(cfg, "", "  ")
	return tokenizerJSON, configJSON
}
