package shard

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// SectionKind says where a section sits in a model.
type SectionKind int

const (
	// Before holds the tensors outside the transformer layers that come
	// first: the token embeddings.
	Before SectionKind = iota
	// Block is one transformer layer.
	Block
	// After holds what follows the layers: the final norm, the head.
	After
	// Tower is another model in the checkpoint (a vision tower, a
	// multi-modal projector), loaded as one section of its own.
	Tower
)

func (k SectionKind) String() string {
	switch k {
	case Before:
		return "before"
	case Block:
		return "block"
	case After:
		return "after"
	case Tower:
		return "tower"
	}
	return fmt.Sprintf("SectionKind(%d)", int(k))
}

// MarshalText writes the kind's name in JSON plans.
func (k SectionKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// A Section is the unit the loader reads, evaluates and frees at once: one
// transformer layer, or a group of tensors outside the layers.
type Section struct {
	Kind SectionKind
	// Layer is the transformer layer's number for a Block, -1 otherwise.
	Layer int
	// Name identifies the section: "layers.17", "before", "after", or a
	// tower's prefix ("vision_tower").
	Name string
}

// SectionFunc assigns a tensor, by name, to its section.
type SectionFunc func(name string) Section

// layerRE finds the layer number in names like "model.layers.17.mlp.w" or
// "language_model.model.layers.3.self_attn.q_proj.weight", whatever the
// prefix.
var layerRE = regexp.MustCompile(`(?:^|\.)layers\.(\d+)(?:\.|$)`)

// TowerPrefixes are the top-level modules DefaultSections treats as towers
// of their own: never inside the language model's layers, never sharded by
// the built-in rules.
var TowerPrefixes = []string{"vision_tower", "vision_model", "multi_modal_projector", "mm_projector", "visual"}

// LayerIndex returns the transformer layer number in a tensor name
// ("...layers.17..." gives 17), or -1 when the name is not inside a layer.
func LayerIndex(name string) int {
	m := layerRE.FindStringSubmatch(name)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return n
}

// DefaultSections is the SectionFunc the loader uses unless told
// otherwise. A name whose first component is one of TowerPrefixes (after an
// optional "model.") belongs to that tower; a name with "layers.N" belongs
// to layer N; of the rest, embeddings come before the layers and everything
// else (final norm, lm_head) after.
func DefaultSections(name string) Section {
	first, rest, _ := strings.Cut(name, ".")
	if first == "model" {
		first, _, _ = strings.Cut(rest, ".")
	}
	for _, p := range TowerPrefixes {
		if first == p {
			return Section{Kind: Tower, Layer: -1, Name: p}
		}
	}
	if n := LayerIndex(name); n >= 0 {
		return Section{Kind: Block, Layer: n, Name: "layers." + strconv.Itoa(n)}
	}
	if isEmbedding(name) {
		return Section{Kind: Before, Layer: -1, Name: "before"}
	}
	return Section{Kind: After, Layer: -1, Name: "after"}
}

func isEmbedding(name string) bool {
	for _, c := range strings.Split(name, ".") {
		if strings.Contains(c, "embed") || c == "wte" || c == "wpe" {
			return true
		}
	}
	return false
}

// SectionsByPattern returns a SectionFunc that takes the layer number from
// the first submatch of re instead of "layers.N" (for models that call
// their layers "blocks.N" or "h.N"); everything else is as DefaultSections.
func SectionsByPattern(re *regexp.Regexp) SectionFunc {
	return func(name string) Section {
		s := DefaultSections(name)
		if s.Kind == Tower {
			return s
		}
		if m := re.FindStringSubmatch(name); len(m) > 1 {
			if n, err := strconv.Atoi(m[1]); err == nil && n >= 0 {
				return Section{Kind: Block, Layer: n, Name: "layers." + strconv.Itoa(n)}
			}
		}
		if s.Kind == Block { // "layers.N" the pattern does not call a layer
			if isEmbedding(name) {
				return Section{Kind: Before, Layer: -1, Name: "before"}
			}
			return Section{Kind: After, Layer: -1, Name: "after"}
		}
		return s
	}
}

// sectionLess orders sections for loading: before, the layers in order,
// after, then towers by name.
func sectionLess(a, b Section) int {
	if a.Kind != b.Kind {
		return int(a.Kind) - int(b.Kind)
	}
	if a.Layer != b.Layer {
		return a.Layer - b.Layer
	}
	return strings.Compare(a.Name, b.Name)
}
