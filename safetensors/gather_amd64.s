#include "textflag.h"

// Both kernels copy rows runs of run bytes, the first at src and each next
// stride bytes further, one after the other into dst, in 32-byte AVX loads
// and stores, two lines a step, each source line prefetched ahead bytes
// before it is loaded (a prefetch never faults, so it may point past the
// source): the hardware prefetcher loses the stream at each gap between
// runs.

// GATHER is the body of both: STORE is the 32-byte store. A row whose
// length is not a multiple of 32 ends with an ordinary store of its last
// 32 bytes, over some already copied (only gatherRowsPF takes such rows).
#define GATHER(STORE) \
	MOVQ	dst+0(FP), DI; \
	MOVQ	src+8(FP), SI; \
	MOVQ	rows+16(FP), CX; \
	MOVQ	run+24(FP), DX; \
	MOVQ	stride+32(FP), R8; \
	MOVQ	ahead+40(FP), R11; \
	TESTQ	CX, CX; \
	JZ	done; \
row: \
	MOVQ	SI, R9; \
	MOVQ	DX, R10; \
lines: \
	CMPQ	R10, $128; \
	JB	blocks; \
	PREFETCHT0	(R9)(R11*1); \
	PREFETCHT0	64(R9)(R11*1); \
	VMOVDQU	0(R9), Y0; \
	VMOVDQU	32(R9), Y1; \
	VMOVDQU	64(R9), Y2; \
	VMOVDQU	96(R9), Y3; \
	STORE	Y0, 0(DI); \
	STORE	Y1, 32(DI); \
	STORE	Y2, 64(DI); \
	STORE	Y3, 96(DI); \
	ADDQ	$128, R9; \
	ADDQ	$128, DI; \
	SUBQ	$128, R10; \
	JMP	lines; \
blocks: \
	CMPQ	R10, $32; \
	JB	tail; \
	PREFETCHT0	(R9)(R11*1); \
	VMOVDQU	0(R9), Y0; \
	STORE	Y0, 0(DI); \
	ADDQ	$32, R9; \
	ADDQ	$32, DI; \
	SUBQ	$32, R10; \
	JMP	blocks; \
tail: \
	TESTQ	R10, R10; \
	JZ	next; \
	VMOVDQU	-32(R9)(R10*1), Y0; \
	VMOVDQU	Y0, -32(DI)(R10*1); \
	ADDQ	R10, DI; \
next: \
	ADDQ	R8, SI; \
	DECQ	CX; \
	JNZ	row; \
done:

// func gatherRowsNT(dst, src unsafe.Pointer, rows, run, stride, ahead uintptr)
//
// Non-temporal stores: the copy is not read again soon, and a store that
// bypasses the cache does not first read its line from memory. run is a
// non-zero multiple of 32 and dst is 32-byte aligned (a non-temporal store
// faults on any other address).
TEXT ·gatherRowsNT(SB), NOSPLIT, $0-48
	GATHER(VMOVNTDQ)
	// Non-temporal stores are weakly ordered: fence them before whatever
	// the caller stores next (a flag another goroutine reads, say).
	SFENCE
	VZEROUPPER
	RET

// func gatherRowsPF(dst, src unsafe.Pointer, rows, run, stride, ahead uintptr)
//
// Ordinary stores, for any dst; run is at least 32.
TEXT ·gatherRowsPF(SB), NOSPLIT, $0-48
	GATHER(VMOVDQU)
	VZEROUPPER
	RET

// func streamNT(dst, src unsafe.Pointer, n uintptr)
//
// Copies n bytes, a multiple of 32, from src into dst, which is 32-byte
// aligned, with non-temporal stores.
TEXT ·streamNT(SB), NOSPLIT, $0-24
	MOVQ	dst+0(FP), DI
	MOVQ	src+8(FP), SI
	MOVQ	n+16(FP), CX

stlines:
	CMPQ	CX, $128
	JB	stblocks
	VMOVDQU	0(SI), Y0
	VMOVDQU	32(SI), Y1
	VMOVDQU	64(SI), Y2
	VMOVDQU	96(SI), Y3
	VMOVNTDQ	Y0, 0(DI)
	VMOVNTDQ	Y1, 32(DI)
	VMOVNTDQ	Y2, 64(DI)
	VMOVNTDQ	Y3, 96(DI)
	ADDQ	$128, SI
	ADDQ	$128, DI
	SUBQ	$128, CX
	JMP	stlines

stblocks:
	TESTQ	CX, CX
	JZ	stdone
	VMOVDQU	0(SI), Y0
	VMOVNTDQ	Y0, 0(DI)
	ADDQ	$32, SI
	ADDQ	$32, DI
	SUBQ	$32, CX
	JMP	stblocks

stdone:
	SFENCE
	VZEROUPPER
	RET

// SMALL copies R12 bytes, 1 to 63, from (R9) to (DI) with ordinary stores,
// as two loads and two stores of the largest size that fits (they overlap
// when R12 is not that size). L16 ... DONE are its labels.
#define SMALL(L16, L8, L4, L1, DONE) \
	CMPQ	R12, $32; \
	JB	L16; \
	VMOVDQU	(R9), Y4; \
	VMOVDQU	-32(R9)(R12*1), Y5; \
	VMOVDQU	Y4, (DI); \
	VMOVDQU	Y5, -32(DI)(R12*1); \
	JMP	DONE; \
L16: \
	CMPQ	R12, $16; \
	JB	L8; \
	VMOVDQU	(R9), X4; \
	VMOVDQU	-16(R9)(R12*1), X5; \
	VMOVDQU	X4, (DI); \
	VMOVDQU	X5, -16(DI)(R12*1); \
	JMP	DONE; \
L8: \
	CMPQ	R12, $8; \
	JB	L4; \
	MOVQ	(R9), R13; \
	MOVQ	-8(R9)(R12*1), R14; \
	MOVQ	R13, (DI); \
	MOVQ	R14, -8(DI)(R12*1); \
	JMP	DONE; \
L4: \
	CMPQ	R12, $4; \
	JB	L1; \
	MOVL	(R9), R13; \
	MOVL	-4(R9)(R12*1), R14; \
	MOVL	R13, (DI); \
	MOVL	R14, -4(DI)(R12*1); \
	JMP	DONE; \
L1: \
	MOVB	(R9), R13; \
	MOVB	-1(R9)(R12*1), R14; \
	MOVB	R13, (DI); \
	MOVB	R14, -1(DI)(R12*1); \
	CMPQ	R12, $3; \
	JB	DONE; \
	MOVB	1(R9), R13; \
	MOVB	R13, 1(DI); \
DONE:

// func gatherRowsLines(dst, src unsafe.Pointer, rows, run, stride, ahead, head uintptr)
//
// Rows that do not keep dst 64-byte aligned, each run a multiple of 64 and
// at least 128 bytes, so every row starts at the same offset within a line:
// its first head bytes (1 to 63) finish the line the row before began, its
// last 64-head bytes begin the line the next row finishes, both stored
// ordinarily, and the whole lines between are stored non-temporally. A
// line never takes both kinds of store: a non-temporal store to part of a
// line, the rest written another way, leaves a partial write-combining
// buffer that costs a read of the line from memory and more.
TEXT ·gatherRowsLines(SB), NOSPLIT, $0-56
	MOVQ	dst+0(FP), DI
	MOVQ	src+8(FP), SI
	MOVQ	rows+16(FP), CX
	MOVQ	run+24(FP), DX
	MOVQ	stride+32(FP), R8
	MOVQ	ahead+40(FP), R11
	MOVQ	head+48(FP), BX
	TESTQ	CX, CX
	JZ	ldone

lrow:
	PREFETCHT0	(SI)(R11*1)
	MOVQ	SI, R9
	MOVQ	BX, R12
	SMALL(h16, h8, h4, h1, hdone)
	ADDQ	BX, R9
	ADDQ	BX, DI
	MOVQ	DX, R10
	SUBQ	$64, R10

lmid:
	CMPQ	R10, $128
	JB	lmid64
	PREFETCHT0	(R9)(R11*1)
	PREFETCHT0	64(R9)(R11*1)
	VMOVDQU	0(R9), Y0
	VMOVDQU	32(R9), Y1
	VMOVDQU	64(R9), Y2
	VMOVDQU	96(R9), Y3
	VMOVNTDQ	Y0, 0(DI)
	VMOVNTDQ	Y1, 32(DI)
	VMOVNTDQ	Y2, 64(DI)
	VMOVNTDQ	Y3, 96(DI)
	ADDQ	$128, R9
	ADDQ	$128, DI
	SUBQ	$128, R10
	JMP	lmid

lmid64:
	TESTQ	R10, R10
	JZ	ltail
	PREFETCHT0	(R9)(R11*1)
	VMOVDQU	0(R9), Y0
	VMOVDQU	32(R9), Y1
	VMOVNTDQ	Y0, 0(DI)
	VMOVNTDQ	Y1, 32(DI)
	ADDQ	$64, R9
	ADDQ	$64, DI

ltail:
	PREFETCHT0	(R9)(R11*1)
	MOVQ	$64, R12
	SUBQ	BX, R12
	SMALL(t16, t8, t4, t1, tdone)
	ADDQ	R12, DI
	ADDQ	R8, SI
	DECQ	CX
	JNZ	lrow

ldone:
	SFENCE
	VZEROUPPER
	RET
