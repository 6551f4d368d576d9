// Command tokenize runs a model's tokenizer from the command line, in pure
// Go: text to ids, ids to text, and chat messages to the rendered prompt.
//
//	echo '["Hello, world!", "안녕하세요"]' | tokenize --model ~/models/Kimi-K2.5
//	echo '[[19182, 11, 2375, 0]]' | tokenize --model DIR --decode
//	echo '[{"role":"user","content":"Hi"}]' | tokenize --model DIR --chat
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mlxdist/mlxdist/tokenizer"
)

func main() {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.model, "model", "", "model `DIR` with tokenizer.json, or tiktoken.model and tokenizer_config.json")
	fs.BoolVar(&o.decode, "decode", false, "read a JSON array of id arrays, print a JSON array of strings")
	fs.BoolVar(&o.chat, "chat", false, "read a JSON array of {role, content} messages, print the rendered prompt and its ids")
	fs.BoolVar(&o.plain, "plain", false, "encode special tokens written in the text as plain text, and add no BOS")
	fs.BoolVar(&o.noGen, "no-generation-prompt", false, "with --chat: do not open an assistant turn at the end")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: tokenize --model DIR [--decode | --chat] < input.json

Reads JSON on standard input and prints JSON on standard output:
  (default)  ["text", ...]               → [[id, ...], ...]  as the model's tokenizer
                                            encodes by default (special tokens in
                                            the text become their ids; BOS if it adds one)
  --decode   [[id, ...], ...]             → ["text", ...]
  --chat     [{"role":..,"content":..}]   → {"prompt": "...", "ids": [...]}

example:
  echo '["Hello, world!"]' | tokenize --model ./Kimi-K2.5

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if o.model == "" || fs.NArg() != 0 || (o.decode && o.chat) {
		fs.Usage()
		os.Exit(2)
	}
	if err := run(os.Stdin, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "tokenize:", err)
		os.Exit(1)
	}
}

type options struct {
	model                      string
	decode, chat, plain, noGen bool
}

type chatOutput struct {
	Prompt string `json:"prompt"`
	IDs    []int  `json:"ids"`
}

func run(r io.Reader, w io.Writer, o options) error {
	tok, err := tokenizer.Load(o.model)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(r)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	switch {
	case o.decode:
		var in [][]int
		if err := dec.Decode(&in); err != nil {
			return fmt.Errorf("standard input is not a JSON array of id arrays: %v", err)
		}
		out := make([]string, len(in))
		for i, ids := range in {
			out[i] = tok.Decode(ids)
		}
		return enc.Encode(out)
	case o.chat:
		var msgs []tokenizer.Message
		if err := dec.Decode(&msgs); err != nil {
			return fmt.Errorf("standard input is not a JSON array of {\"role\", \"content\"} messages: %v", err)
		}
		prompt, err := tok.ApplyChatTemplate(msgs, !o.noGen)
		if err != nil {
			return err
		}
		return enc.Encode(chatOutput{prompt, nonNil(tok.EncodePrompt(prompt))})
	default:
		var in []string
		if err := dec.Decode(&in); err != nil {
			return fmt.Errorf("standard input is not a JSON array of strings: %v", err)
		}
		out := make([][]int, len(in))
		for i, s := range in {
			if o.plain {
				out[i] = nonNil(tok.EncodePlain(s))
			} else {
				out[i] = nonNil(tok.Encode(s))
			}
		}
		return enc.Encode(out)
	}
}

func nonNil(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}
