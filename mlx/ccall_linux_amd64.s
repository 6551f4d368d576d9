#include "textflag.h"

// ccallTramp is run by runtime.asmcgocall on the system stack, with the C
// calling convention: DI points at a cframe {fn, a[6], r}. It loads the six
// argument registers, calls fn and stores its result.
TEXT ccallTramp<>(SB), NOSPLIT|NOFRAME, $0
	PUSHQ BP
	MOVQ  SP, BP
	PUSHQ BX          // callee-saved: holds the frame across the call
	SUBQ  $8, SP      // keep SP 16-byte aligned at the CALL
	MOVQ  DI, BX
	MOVQ  8(BX), DI
	MOVQ  16(BX), SI
	MOVQ  24(BX), DX
	MOVQ  32(BX), CX
	MOVQ  40(BX), R8
	MOVQ  48(BX), R9
	MOVQ  0(BX), R10
	XORL  AX, AX      // no vector registers used (for variadic callees)
	CALL  R10
	MOVQ  AX, 56(BX)
	ADDQ  $8, SP
	POPQ  BX
	POPQ  BP
	RET

GLOBL ·ccallTrampABI0(SB), NOPTR|RODATA, $8
DATA ·ccallTrampABI0(SB)/8, $ccallTramp<>(SB)
