package tokenizer

import "container/heap"

// Long pieces merge through a heap instead of a scan per merge: the same
// choice (the lowest rank, the leftmost on a tie) in O(n log n) rather than
// O(n²), so that a megabyte without a space encodes in a blink instead of
// minutes. Short pieces keep the scan, which is faster for them.
const heapMergeFrom = 64

type mergeCand struct {
	rank  int
	left  int32  // index of the left symbol
	stamp uint32 // the left symbol's version when the candidate was made
}

type candHeap []mergeCand

func (h candHeap) Len() int { return len(h) }
func (h candHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].left < h[j].left
}
func (h candHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *candHeap) Push(x any)   { *h = append(*h, x.(mergeCand)) }
func (h *candHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// symbolList is a doubly linked list of symbols over a slice, each with a
// version that a merge bumps so that stale candidates are skipped.
type symbolList struct {
	prev, next []int32
	stamp      []uint32
	h          candHeap
}

func (l *symbolList) reset(n int) {
	l.prev, l.next, l.stamp = make([]int32, n), make([]int32, n), make([]uint32, n)
	for i := range n {
		l.prev[i], l.next[i] = int32(i-1), int32(i+1)
	}
	l.next[n-1] = -1
	l.h = l.h[:0]
}

// run merges until no candidate is left. rank(a, b) returns the rank of
// merging symbols a and b (false when they do not merge); merged(a, b) makes
// a the merge of a and b.
func (l *symbolList) run(rank func(a, b int32) (int, bool), merged func(a, b int32)) {
	push := func(a int32) {
		if b := l.next[a]; b >= 0 {
			if r, ok := rank(a, b); ok {
				heap.Push(&l.h, mergeCand{r, a, l.stamp[a]})
			}
		}
	}
	for a := int32(0); a >= 0; a = l.next[a] {
		if b := l.next[a]; b >= 0 {
			if r, ok := rank(a, b); ok {
				l.h = append(l.h, mergeCand{r, a, l.stamp[a]})
			}
		}
	}
	heap.Init(&l.h)
	for len(l.h) > 0 {
		c := heap.Pop(&l.h).(mergeCand)
		a := c.left
		if l.stamp[a] != c.stamp || l.stamp[a]&1 == 1 {
			continue // a changed or was merged away since
		}
		b := l.next[a]
		if b < 0 {
			continue
		}
		if r, ok := rank(a, b); !ok || r != c.rank {
			continue // b changed since
		}
		merged(a, b)
		// Remove b; its odd stamp marks it dead.
		l.stamp[b] |= 1
		l.next[a] = l.next[b]
		if n := l.next[b]; n >= 0 {
			l.prev[n] = a
		}
		l.stamp[a] += 2
		if p := l.prev[a]; p >= 0 {
			l.stamp[p] += 2
			push(p)
		}
		push(a)
	}
}

// encodeLong is rankBPE.encode for a long piece.
func (b *rankBPE) encodeLong(piece string, out []int) []int {
	var l symbolList
	l.reset(len(piece))
	end := make([]int32, len(piece))
	for i := range end {
		end[i] = int32(i + 1)
	}
	l.run(func(x, y int32) (int, bool) {
		r, ok := b.ranks[piece[x:end[y]]]
		return r, ok
	}, func(x, y int32) { end[x] = end[y] })
	for a := int32(0); a >= 0; a = l.next[a] {
		out = append(out, b.ranks[piece[a:end[a]]])
	}
	return out
}

// mergeLong is mergeBPE.merge for a long word.
func (b *mergeBPE) mergeLong(syms []int) []int {
	var l symbolList
	l.reset(len(syms))
	l.run(func(x, y int32) (int, bool) {
		m, ok := b.merges[pairKey(syms[x], syms[y])]
		return m.rank, ok
	}, func(x, y int32) { syms[x] = b.merges[pairKey(syms[x], syms[y])].id })
	out := syms[:0]
	for a := int32(0); a >= 0; a = l.next[a] {
		out = append(out, syms[a])
	}
	return out
}
