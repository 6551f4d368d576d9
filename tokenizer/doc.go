// Package tokenizer turns text into a model's token ids and back exactly as
// the model's own tokenizer does, in pure Go: no cgo, no MLX, the standard
// library only.
//
// It reads the layouts the supported models ship: a Hugging Face
// tokenizer.json with a byte-level BPE model (Llama 3, DeepSeek-V3, Qwen
// with its NFC normalizer, GPT-2 and their kin) or a SentencePiece-style one whose spaces are "▁"
// and whose missing characters fall back to <0xNN> byte tokens (Llama 2,
// Mistral, TinyLlama), and Kimi K2's tiktoken.model, whose base ranks are
// followed by a block of special ids up to config.json's vocab_size (named
// in tokenizer_config.json's added_tokens_decoder, the rest
// <|reserved_token_ID|>).
//
// # Pre-tokenizers are scanners, not regular expressions
//
// Before BPE, text is split into pieces by a pattern. The reference
// tokenizers run those patterns on backtracking engines (fancy-regex under
// tiktoken, Oniguruma under tokenizers) that Go's regexp cannot stand in for:
// Kimi's pattern intersects Unicode classes ([\p{Lu}...\p{M}&&[^\p{Han}]]),
// which RE2 silently reads as something else, every family uses the
// lookahead \s+(?!\S), which RE2 rejects, and \s there is Unicode
// White_Space where RE2's is ASCII. So each known pattern is a hand-written
// scanner with the engine's semantics — alternatives in order, the first
// that matches wins; an optional prefix is tried with, then without; a
// greedy run gives back one rune at a time — over the Unicode tables of
// package unicode. The patterns are recognised by their exact text
// (PatternKimi, PatternCL100K, PatternO200K, ...); a pattern that is none of
// them is an ErrUnsupported error, never a silent fallback to another split.
//
// # Encoding as the reference does by default
//
// Encode gives what mlx-lm's tokenizer.encode(text) gives: special tokens
// written in the text become their ids (split out before the model sees the
// text, leftmost and longest first, with Hugging Face's lstrip, rstrip and
// single_word flags), and a BOS is added only when the tokenizer's
// post-processor adds one. EncodePlain reads special tokens as plain text
// and adds nothing. There is no keyword argument to get wrong.
//
// Decode concatenates the bytes of the tokens and replaces each maximal
// invalid UTF-8 sequence with U+FFFD, as Python and Rust do; a
// StreamDecoder holds back the bytes of an unfinished character, so that
// what it returns is always whole characters and, once flushed, adds up to
// Decode.
//
// # Chat templates without Jinja
//
// Go has no Jinja. ApplyChatTemplate recognises the model's chat_template by
// the markers of its family — Kimi K2 / K2.5, DeepSeek-V3, Llama 3 (with or
// without the date header of 3.1 and 3.2), ChatML (Qwen2, Qwen2.5, SmolLM),
// Qwen3 (ChatML with thinking) — and renders it in Go, byte for byte as
// transformers' apply_chat_template renders that family's template
// (testdata/chat holds one per family). Any other template, or a variant
// whose markers say it does more, is ErrUnknownTemplate, whose message says
// to pass --raw and send the prompt as it is.
//
// NFC needs Unicode's decomposition tables, which package unicode does not
// have: znfc.go is generated from Python's unicodedata by gen_nfc.py (go
// generate), and a test checks that it is current.
//
// # How it is checked
//
// The tests run the references from the project's Python environment:
// testdata/reference.py trains byte-level and SentencePiece-style
// vocabularies with the tokenizers library on a corpus the test generates
// (eleven layouts: GPT-2, Llama 3, Qwen2 with NFC, o200k, DeepSeek-V3,
// Kimi's pattern through tokenizers, added-token flags, digits with a
// prefix space, two SentencePiece layouts) and builds Kimi's layout for
// tiktoken from one of them; every string's ids, plain ids, decoded and
// streamed text must match. TOKENIZER_CORPUS=SIZE,SEED runs a longer
// corpus; FuzzEncode (go test -fuzz) checks that encoding never panics,
// that every byte of the text lands in a piece, and that decoding gives
// valid UTF-8 text back. testdata/chat_reference.py renders the chat
// fixtures with transformers.
//
// What the package trusts: tokenizer files are checked for the shapes it
// reads (every byte ranked, merges that name vocabulary tokens, ids in
// range) and rejected with ErrFormat otherwise; any text, valid UTF-8 or
// not, can be encoded without panicking.
package tokenizer
