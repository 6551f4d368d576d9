#include "textflag.h"

// func gatherRows(dst, src unsafe.Pointer, rows, run, stride, ahead uintptr)
//
// Copies rows runs of run bytes, the first at src and each next stride
// bytes further, one after the other into dst. run is a non-zero multiple
// of 16 and dst is 16-byte aligned. Stores are non-temporal (the copy is
// not read again soon, and a store that bypasses the cache does not first
// read its line from memory); each source line is prefetched ahead bytes
// before it is loaded (a prefetch never faults, so it may point past the
// source).
TEXT ·gatherRows(SB), NOSPLIT, $0-48
	MOVQ	dst+0(FP), DI
	MOVQ	src+8(FP), SI
	MOVQ	rows+16(FP), CX
	MOVQ	run+24(FP), DX
	MOVQ	stride+32(FP), R8
	MOVQ	ahead+40(FP), R11
	TESTQ	CX, CX
	JZ	done

row:
	MOVQ	SI, R9
	MOVQ	DX, R10

lines:
	CMPQ	R10, $64
	JB	tail
	PREFETCHT0	(R9)(R11*1)
	MOVOU	0(R9), X0
	MOVOU	16(R9), X1
	MOVOU	32(R9), X2
	MOVOU	48(R9), X3
	MOVNTO	X0, 0(DI)
	MOVNTO	X1, 16(DI)
	MOVNTO	X2, 32(DI)
	MOVNTO	X3, 48(DI)
	ADDQ	$64, R9
	ADDQ	$64, DI
	SUBQ	$64, R10
	JMP	lines

tail:
	TESTQ	R10, R10
	JZ	next
	MOVOU	0(R9), X0
	MOVNTO	X0, 0(DI)
	ADDQ	$16, R9
	ADDQ	$16, DI
	SUBQ	$16, R10
	JMP	tail

next:
	ADDQ	R8, SI
	DECQ	CX
	JNZ	row

done:
	// Non-temporal stores are weakly ordered: fence them before whatever
	// the caller stores next (a flag another goroutine reads, say).
	SFENCE
	RET
