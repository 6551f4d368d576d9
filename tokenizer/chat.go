package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// A chatFamily renders the chat template of one model family in Go.
type chatFamily struct {
	name   string
	render func(msgs []Message, addGenerationPrompt bool) (string, error)
}

// ChatFamily names the family ApplyChatTemplate renders this model's
// template as ("kimi-k2", "kimi-k2.5", "deepseek-v3", "llama3",
// "llama3.1", "chatml", "qwen3"), or returns the error it would return.
func (t *Tokenizer) ChatFamily() (string, error) {
	f, err := t.chatFamily()
	if err != nil {
		return "", err
	}
	return f.name, nil
}

// ApplyChatTemplate renders msgs as the model's chat template does (what
// transformers' apply_chat_template(msgs, tokenize=False,
// add_generation_prompt=...) returns), for the template families this
// package knows. A template of no known family, or a family feature the Go
// renderer does not have (a role it does not take, a thinking variant), is
// an ErrUnknownTemplate error: pass --raw and send the prompt as it is.
func (t *Tokenizer) ApplyChatTemplate(msgs []Message, addGenerationPrompt bool) (string, error) {
	f, err := t.chatFamily()
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "", fmt.Errorf("tokenizer: no messages to render with the %s chat template", f.name)
	}
	return f.render(msgs, addGenerationPrompt)
}

func (t *Tokenizer) chatFamily() (*chatFamily, error) {
	tmpl := t.chatTemplate
	if tmpl == "" {
		return nil, fmt.Errorf("%w: the model has no chat_template: pass --raw and write the prompt yourself", ErrUnknownTemplate)
	}
	unknown := func(why string) error {
		return fmt.Errorf("%w: %s: pass --raw and write the prompt yourself", ErrUnknownTemplate, why)
	}
	has := func(s ...string) bool {
		for _, x := range s {
			if !strings.Contains(tmpl, x) {
				return false
			}
		}
		return true
	}
	switch {
	case has("<|im_middle|>", "<|im_assistant|>", "<|im_user|>"):
		sys := kimiSystemRE.FindStringSubmatch(tmpl)
		if sys == nil {
			return nil, unknown("a Kimi template without its default system prompt")
		}
		k := &kimi{system: jinjaUnescape(sys[1])}
		if has("<think></think>") {
			k.thinking = true
			k.genThink = has("thinking is false")
			return &chatFamily{"kimi-k2.5", k.render}, nil
		}
		if has("<think>") {
			return nil, unknown("a Kimi template with a thinking form this package does not render")
		}
		return &chatFamily{"kimi-k2", k.render}, nil
	case has("<｜User｜>", "<｜Assistant｜>"):
		if has("think>") {
			return nil, unknown("a DeepSeek template with thinking (R1, V3.1) that this package does not render")
		}
		d := &deepSeek{bos: t.bosToken}
		return &chatFamily{"deepseek-v3", d.render}, nil
	case has("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
		l := &llama3{bos: t.bosToken}
		if !has("Cutting Knowledge Date") {
			return &chatFamily{"llama3", l.render}, nil
		}
		k := llamaKnowledgeRE.FindStringSubmatch(tmpl)
		if k == nil {
			return nil, unknown("a Llama 3 template whose knowledge date cannot be read")
		}
		l.dated, l.knowledge = true, k[1]
		switch d := llamaDateRE.FindStringSubmatch(tmpl); {
		case has("strftime_now"):
			l.today = true
		case d != nil:
			l.date = d[1]
		default:
			return nil, unknown("a Llama 3 template whose default date cannot be read")
		}
		return &chatFamily{"llama3.1", l.render}, nil
	case has("<|im_start|>", "<|im_end|>"):
		if has("<think>") {
			if has("last_query_index", "enable_thinking", "<tool_response>") {
				return &chatFamily{"qwen3", renderQwen3}, nil
			}
			return nil, unknown("a ChatML template with a thinking form this package does not render")
		}
		c := &chatML{toolResponse: has("<tool_response>")}
		if m := chatMLSystemRE.FindStringSubmatch(tmpl); m != nil {
			c.system = jinjaUnescape(m[1])
		}
		return &chatFamily{"chatml", c.render}, nil
	}
	return nil, unknown("the chat template is of no family this package renders (Kimi K2, DeepSeek-V3, Llama 3, ChatML)")
}

var (
	kimiSystemRE     = regexp.MustCompile(`<\|im_system\|>system<\|im_middle\|>([^{}<]+)<\|im_end\|>`)
	chatMLSystemRE   = regexp.MustCompile(`<\|im_start\|>system(?:\\n|\n)([^'"{}+]+)<\|im_end\|>`)
	llamaKnowledgeRE = regexp.MustCompile(`Cutting Knowledge Date: ([^"\\]+)\\n`)
	llamaDateRE      = regexp.MustCompile(`set date_string = "([^"]+)"`)
)

// jinjaUnescape undoes the escapes of a Jinja string literal.
func jinjaUnescape(s string) string {
	return strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\'`, "'", `\"`, `"`, `\\`, `\`).Replace(s)
}

// pyStrip is Python's str.strip(), Jinja's trim filter.
func pyStrip(s string) string { return strings.TrimFunc(s, pySpace) }

func roleError(family, role string) error {
	return fmt.Errorf("%w: the Go %s renderer takes roles system, user and assistant, not %q: pass --raw and write the prompt yourself",
		ErrUnknownTemplate, family, role)
}

// chatML is the ChatML family: Qwen2, Qwen2.5, SmolLM and their kin, with
// the default system prompt some of them add.
type chatML struct {
	system       string
	toolResponse bool // Qwen2.5's tool messages, grouped into a user turn
}

func (c *chatML) render(msgs []Message, gen bool) (string, error) {
	var b strings.Builder
	if c.system != "" && msgs[0].Role != "system" {
		b.WriteString("<|im_start|>system\n" + c.system + "<|im_end|>\n")
	}
	for i, m := range msgs {
		if c.toolResponse && m.Role == "tool" {
			if i == 0 || msgs[i-1].Role != "tool" {
				b.WriteString("<|im_start|>user")
			}
			b.WriteString("\n<tool_response>\n" + m.Content + "\n</tool_response>")
			if i == len(msgs)-1 || msgs[i+1].Role != "tool" {
				b.WriteString("<|im_end|>\n")
			}
			continue
		}
		b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
	}
	if gen {
		b.WriteString("<|im_start|>assistant\n")
	}
	return b.String(), nil
}

// renderQwen3 is Qwen3's template: ChatML whose assistant turns after the
// last user query carry their thinking in a <think> block, while earlier
// ones lose it.
func renderQwen3(msgs []Message, gen bool) (string, error) {
	var b strings.Builder
	if msgs[0].Role == "system" {
		b.WriteString("<|im_start|>system\n" + msgs[0].Content + "<|im_end|>\n")
	}
	lastQuery := len(msgs) - 1
	for i := len(msgs) - 1; i >= 0; i-- {
		c := msgs[i].Content
		if msgs[i].Role == "user" && !(strings.HasPrefix(c, "<tool_response>") && strings.HasSuffix(c, "</tool_response>")) {
			lastQuery = i
			break
		}
	}
	for i, m := range msgs {
		content := m.Content
		switch {
		case m.Role == "user" || m.Role == "system" && i > 0:
			b.WriteString("<|im_start|>" + m.Role + "\n" + content + "<|im_end|>\n")
		case m.Role == "assistant":
			reasoning := ""
			if strings.Contains(content, "</think>") {
				before, _, _ := strings.Cut(content, "</think>")
				before = strings.TrimRight(before, "\n")
				if k := strings.LastIndex(before, "<think>"); k >= 0 {
					reasoning = strings.TrimLeft(before[k+len("<think>"):], "\n")
				} else {
					reasoning = strings.TrimLeft(before, "\n")
				}
				content = strings.TrimLeft(content[strings.LastIndex(content, "</think>")+len("</think>"):], "\n")
			}
			if i > lastQuery && (i == len(msgs)-1 || reasoning != "") {
				b.WriteString("<|im_start|>assistant\n<think>\n" + strings.Trim(reasoning, "\n") + "\n</think>\n\n" + strings.TrimLeft(content, "\n"))
			} else {
				b.WriteString("<|im_start|>assistant\n" + content)
			}
			b.WriteString("<|im_end|>\n")
		case m.Role == "tool":
			if i == 0 || msgs[i-1].Role != "tool" {
				b.WriteString("<|im_start|>user")
			}
			b.WriteString("\n<tool_response>\n" + content + "\n</tool_response>")
			if i == len(msgs)-1 || msgs[i+1].Role != "tool" {
				b.WriteString("<|im_end|>\n")
			}
		case m.Role == "system":
			// The first system message opened the prompt.
		default:
			return "", roleError("Qwen3", m.Role)
		}
	}
	if gen {
		b.WriteString("<|im_start|>assistant\n")
	}
	return b.String(), nil
}

// llama3 is Llama 3's template, and with dated set the 3.1 / 3.2 one that
// opens with a system header carrying the knowledge and today's dates.
type llama3 struct {
	bos       string
	dated     bool
	knowledge string // "December 2023"
	date      string // the template's fixed date, when it has no strftime_now
	today     bool   // the date is today's, as strftime_now("%d %b %Y") gives it
}

func (l *llama3) render(msgs []Message, gen bool) (string, error) {
	for _, m := range msgs {
		if m.Role == "tool" || m.Role == "ipython" {
			return "", roleError("Llama 3", m.Role)
		}
	}
	var b strings.Builder
	turn := func(m Message) {
		b.WriteString("<|start_header_id|>" + m.Role + "<|end_header_id|>\n\n" + pyStrip(m.Content) + "<|eot_id|>")
	}
	if l.dated {
		system := ""
		if msgs[0].Role == "system" {
			system, msgs = pyStrip(msgs[0].Content), msgs[1:]
		}
		date := l.date
		if l.today {
			date = time.Now().Format("02 Jan 2006")
		}
		b.WriteString(l.bos + "<|start_header_id|>system<|end_header_id|>\n\n")
		b.WriteString("Cutting Knowledge Date: " + l.knowledge + "\nToday Date: " + date + "\n\n")
		b.WriteString(system + "<|eot_id|>")
	} else {
		b.WriteString(l.bos)
	}
	for _, m := range msgs {
		turn(m)
	}
	if gen {
		b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	}
	return b.String(), nil
}

// deepSeek is DeepSeek-V3's template: every system message joined at the
// front, then user and assistant turns, tool outputs grouped.
type deepSeek struct{ bos string }

func (d *deepSeek) render(msgs []Message, gen bool) (string, error) {
	var b strings.Builder
	b.WriteString(d.bos)
	first := true
	for _, m := range msgs {
		if m.Role == "system" {
			if !first {
				b.WriteString("\n\n")
			}
			b.WriteString(m.Content)
			first = false
		}
	}
	isTool, outputFirst := false, true
	for _, m := range msgs {
		switch m.Role {
		case "system":
		case "user":
			isTool = false
			b.WriteString("<｜User｜>" + m.Content)
		case "assistant":
			if isTool {
				b.WriteString("<｜tool▁outputs▁end｜>" + m.Content + "<｜end▁of▁sentence｜>")
				isTool = false
			} else {
				b.WriteString("<｜Assistant｜>" + m.Content + "<｜end▁of▁sentence｜>")
			}
		case "tool":
			isTool = true
			// The published template never sets is_output_first back, so
			// only the conversation's first tool output opens the block.
			if outputFirst {
				b.WriteString("<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" + m.Content + "<｜tool▁output▁end｜>")
				outputFirst = false
			} else {
				b.WriteString("\n<｜tool▁output▁begin｜>" + m.Content + "<｜tool▁output▁end｜>")
			}
		default:
			return "", roleError("DeepSeek-V3", m.Role)
		}
	}
	if isTool {
		b.WriteString("<｜tool▁outputs▁end｜>")
	}
	if gen && !isTool {
		b.WriteString("<｜Assistant｜>")
	}
	return b.String(), nil
}

// kimi is Kimi K2's template and, with thinking set, the K2.5 one whose
// assistant turns carry an (empty, for past turns) <think></think> block.
type kimi struct {
	system   string
	thinking bool
	genThink bool // the generation prompt opens a <think> block
}

func (k *kimi) render(msgs []Message, gen bool) (string, error) {
	var b strings.Builder
	if msgs[0].Role != "system" {
		b.WriteString("<|im_system|>system<|im_middle|>" + k.system + "<|im_end|>")
	}
	for _, m := range msgs {
		switch m.Role {
		case "system":
			b.WriteString("<|im_system|>system<|im_middle|>")
		case "user":
			b.WriteString("<|im_user|>user<|im_middle|>")
		case "assistant":
			b.WriteString("<|im_assistant|>assistant<|im_middle|>")
			if k.thinking {
				b.WriteString("<think></think>")
			}
		default:
			return "", roleError("Kimi", m.Role)
		}
		b.WriteString(m.Content + "<|im_end|>")
	}
	if gen {
		b.WriteString("<|im_assistant|>assistant<|im_middle|>")
		if k.genThink {
			b.WriteString("<think>")
		}
	}
	return b.String(), nil
}
