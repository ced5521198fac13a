# unwind.S: functions with hand-written SEH unwind directives, so that the
# driver covers every x64 unwind operation clang would not emit by itself:
# SET_FPREG with an offset, SAVE_NONVOL(_FAR), SAVE_XMM128(_FAR) and
# PUSH_MACHFRAME. GNU assembler syntax (clang's integrated assembler).

	.intel_syntax noprefix
	.text

# AsmFramePointer(x): push rbp; push rbx; sub rsp,0x40; lea rbp,[rsp+0x20];
# save rsi and xmm6 with mov; calls AsmInterrupted.
	.globl	AsmFramePointer
	.def	AsmFramePointer; .scl 2; .type 32; .endef
	.p2align 4
AsmFramePointer:
	.seh_proc AsmFramePointer
	push	rbp
	.seh_pushreg rbp
	push	rbx
	.seh_pushreg rbx
	sub	rsp, 0x40
	.seh_stackalloc 0x40
	lea	rbp, [rsp + 0x20]
	.seh_setframe rbp, 0x20
	mov	[rbp + 0x10], rsi
	.seh_savereg rsi, 0x30
	movaps	[rbp - 0x20], xmm6
	.seh_savexmm xmm6, 0x0
	.seh_endprologue
	mov	rbx, rcx
	call	AsmInterrupted
	add	rax, rbx
	movaps	xmm6, [rbp - 0x20]
	mov	rsi, [rbp + 0x10]
	lea	rsp, [rbp + 0x20]
	pop	rbx
	pop	rbp
	ret
	.seh_endproc

# AsmTrapHandler: an interrupt-style entry: a machine frame with an error
# code, then a regular frame. In the test the machine frame's RIP points
# into AsmInterrupted, as if AsmInterrupted had been interrupted.
	.globl	AsmTrapHandler
	.def	AsmTrapHandler; .scl 2; .type 32; .endef
	.p2align 4
AsmTrapHandler:
	.seh_proc AsmTrapHandler
	.seh_pushframe @code
	push	rbp
	.seh_pushreg rbp
	sub	rsp, 0x30
	.seh_stackalloc 0x30
	.seh_endprologue
	call	AsmFarSaves
	add	rsp, 0x30
	pop	rbp
	add	rsp, 8
	iretq
	.seh_endproc

# AsmInterrupted: the code the machine frame returns to (the test places
# the interrupted instruction at AsmInterruptedAt).
	.globl	AsmInterrupted
	.def	AsmInterrupted; .scl 2; .type 32; .endef
	.p2align 4
AsmInterrupted:
	.seh_proc AsmInterrupted
	push	rdi
	.seh_pushreg rdi
	sub	rsp, 0x20
	.seh_stackalloc 0x20
	.seh_endprologue
	mov	rdi, rcx
	.globl	AsmInterruptedAt
AsmInterruptedAt:
	nop
	nop
	call	LeafTouchAsm
	add	rsp, 0x20
	pop	rdi
	ret
	.seh_endproc

# AsmFarSaves: a 1 MiB frame with registers saved beyond 512 KiB
# (SAVE_NONVOL_FAR, SAVE_XMM128_FAR); calls back into C.
	.globl	AsmFarSaves
	.def	AsmFarSaves; .scl 2; .type 32; .endef
	.p2align 4
AsmFarSaves:
	.seh_proc AsmFarSaves
	sub	rsp, 0x100008
	.seh_stackalloc 0x100008
	mov	[rsp + 0x90000], r12
	.seh_savereg r12, 0x90000
	movaps	[rsp + 0xA0000], xmm7
	.seh_savexmm xmm7, 0xA0000
	.seh_endprologue
	mov	r12, rcx
	call	AsmCallback
	movaps	xmm7, [rsp + 0xA0000]
	mov	r12, [rsp + 0x90000]
	add	rsp, 0x100008
	ret
	.seh_endproc

# LeafTouchAsm: a leaf with no unwind data at all; its caller is at [rsp].
	.globl	LeafTouchAsm
	.def	LeafTouchAsm; .scl 2; .type 32; .endef
	.p2align 4
LeafTouchAsm:
	mov	rax, [rcx]
	ret
