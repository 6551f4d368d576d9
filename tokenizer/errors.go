package tokenizer

import "errors"

// ErrUnsupported is matched (with errors.Is) by the error for a tokenizer
// file that asks for something this package does not implement: a model
// type, a pre-tokenizer pattern, a normalizer. It never guesses instead.
var ErrUnsupported = errors.New("tokenizer: unsupported")

// ErrFormat is matched by the error for a tokenizer file that cannot be
// read: malformed JSON, a bad tiktoken.model line, an id out of range.
var ErrFormat = errors.New("tokenizer: invalid format")

// ErrUnknownTemplate is matched by the error ApplyChatTemplate returns for a
// chat template of no family it knows.
var ErrUnknownTemplate = errors.New("tokenizer: unknown chat template")
