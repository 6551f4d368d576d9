package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/mlxdist/mlxdist/tokenizer"
)

// A model directory in Kimi's layout: tiktoken.model, tokenizer_config.json
// with the chat template, config.json with the vocabulary size.
func Example() {
	tok, err := tokenizer.Load("testdata/kimi-tiny")
	if err != nil {
		log.Fatal(err)
	}
	prompt, err := tok.ApplyChatTemplate([]tokenizer.Message{{Role: "user", Content: "Hello world"}}, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(prompt)
	ids := tok.EncodePrompt(prompt)
	fmt.Println(len(ids), "ids, ending", ids[len(ids)-3:])
	fmt.Println("stop on", tok.EOS())
	// Output:
	// <|im_system|>system<|im_middle|>You are Kimi, an AI assistant created by Moonshot AI.<|im_end|><|im_user|>user<|im_middle|>Hello world<|im_end|><|im_assistant|>assistant<|im_middle|>
	// 82 ids, ending [110 116 275]
	// stop on [269 270]
}

// Streaming decode returns whole characters only: this small vocabulary
// spells Hangul byte by byte, and the first two bytes of each character
// wait for the third.
func ExampleStreamDecoder() {
	tok, err := tokenizer.Load("testdata/kimi-tiny")
	if err != nil {
		log.Fatal(err)
	}
	d := tok.NewStreamDecoder()
	for _, id := range tok.EncodePlain("Hello 안녕!") {
		fmt.Printf("%q ", d.Add(id))
	}
	fmt.Printf("%q\n", d.Flush())
	fmt.Println(tok.EncodePlain("[EOS]")[0] != tok.Encode("[EOS]")[0])
	// Output:
	// "Hello" " " "" "" "안" "" "" "녕" "!" ""
	// true
}
