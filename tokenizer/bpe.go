package tokenizer

import "math"

// rankBPE is tiktoken's byte pair encoding: the ranks of byte strings, where
// a lower rank merges first and a token's id is its rank.
type rankBPE struct {
	ranks map[string]int
}

type part struct {
	start int
	rank  int
}

// encode appends the ids of one pre-tokenized piece. It merges, as tiktoken
// does, the adjacent pair whose concatenation has the lowest rank (the
// leftmost on a tie) until no adjacent pair has a rank.
func (b *rankBPE) encode(piece string, out []int, scratch *[]part) []int {
	if id, ok := b.ranks[piece]; ok {
		return append(out, id)
	}
	if len(piece) == 1 {
		// Every single byte has a rank in a well-formed vocabulary; Load
		// checks that.
		return append(out, b.ranks[piece])
	}
	if len(piece) >= heapMergeFrom {
		return b.encodeLong(piece, out)
	}
	return b.scan(piece, out, scratch)
}

// scan is encode's merge loop: a scan for the lowest rank per merge.
func (b *rankBPE) scan(piece string, out []int, scratch *[]part) []int {
	parts := (*scratch)[:0]
	for i := 0; i <= len(piece); i++ {
		parts = append(parts, part{i, math.MaxInt})
	}
	rankAt := func(i int) int {
		if i+2 < len(parts) {
			if r, ok := b.ranks[piece[parts[i].start:parts[i+2].start]]; ok {
				return r
			}
		}
		return math.MaxInt
	}
	for i := 0; i < len(parts)-2; i++ {
		parts[i].rank = rankAt(i)
	}
	for len(parts) > 2 {
		min, at := math.MaxInt, -1
		for i := 0; i < len(parts)-1; i++ {
			if parts[i].rank < min {
				min, at = parts[i].rank, i
			}
		}
		if at < 0 {
			break
		}
		parts = append(parts[:at+1], parts[at+2:]...)
		parts[at].rank = rankAt(at)
		if at > 0 {
			parts[at-1].rank = rankAt(at - 1)
		}
	}
	for i := 0; i < len(parts)-1; i++ {
		out = append(out, b.ranks[piece[parts[i].start:parts[i+1].start]])
	}
	*scratch = parts
	return out
}

// mergeBPE is Hugging Face's BPE model: a word starts as one symbol per
// character (per byte for byte-level vocabularies) and the adjacent pair
// earliest in the merges list is merged first (the leftmost on a tie).
type mergeBPE struct {
	vocab        map[string]int
	merges       map[uint64]merge // pair of ids → merge
	ignoreMerges bool             // a word in the vocabulary is one token, unmerged
}

type merge struct {
	rank, id int
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// merge applies the merges to syms in place and returns the merged ids.
func (b *mergeBPE) merge(syms []int) []int {
	if len(syms) >= heapMergeFrom {
		return b.mergeLong(syms)
	}
	for len(syms) > 1 {
		best, at := merge{rank: math.MaxInt}, -1
		for i := 0; i+1 < len(syms); i++ {
			if m, ok := b.merges[pairKey(syms[i], syms[i+1])]; ok && m.rank < best.rank {
				best, at = m, i
			}
		}
		if at < 0 {
			break
		}
		syms[at] = best.id
		syms = append(syms[:at+1], syms[at+2:]...)
	}
	return syms
}
