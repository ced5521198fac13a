// kdtdrv.c: a tiny Windows x64 kernel-mode "driver" used by the stack
// walker's end-to-end tests. It is never loaded: the tests lay out a stack
// through these functions in a synthetic dump and unwind it with the
// image's .pdata. The functions call each other with different prologues.
//
// Build: see build.sh (clang --target=x86_64-pc-windows-msvc + lld-link).

typedef unsigned long long u64;

#if defined(__x86_64__)
// Implemented in unwind.S with explicit SEH directives (x64 only).
u64 AsmFramePointer(u64 x);
#endif

volatile u64 g_sink;

// The compiler references _fltused when floating point is used; the CRT
// normally defines it.
int _fltused = 0;

__declspec(noinline) u64 LeafTouch(volatile u64 *p) {
	// The innermost frame: the test "crashes" here.
	*p = *p + 1;
	return *p;
}

__declspec(noinline) u64 SavesNonVolatiles(u64 a, u64 b, u64 c, u64 d) {
	// Many values live across calls: clang saves rbx, rsi, rdi, r12-r15.
	u64 e = a * 3, f = b * 5, g = c * 7, h = d * 11, i = a ^ b, j = c ^ d, k = a + d;
	u64 r = LeafTouch(&g_sink);
	r += LeafTouch(&g_sink);
	return r + e + f + g + h + i + j + k;
}

__declspec(noinline) u64 LargeFrame(u64 n) {
	// 8 KiB of locals: UWOP_ALLOC_LARGE with a scaled 16-bit size.
	volatile char buf[8192];
	buf[n & 8191] = (char)n;
	u64 r = SavesNonVolatiles(n, buf[(n + 1) & 8191], n + 2, n + 3);
	return r + buf[0];
}

__declspec(noinline) u64 HugeFrame(u64 n) {
	// 640 KiB of locals: UWOP_ALLOC_LARGE with a 32-bit size.
	volatile char buf[655360];
	buf[n % sizeof(buf)] = (char)n;
	u64 r = LargeFrame(n + buf[(n * 7) % sizeof(buf)]);
	return r + buf[1];
}

__declspec(noinline) u64 FloatWork(u64 n) {
	// Doubles live across the call: xmm6/xmm7 are saved (SAVE_XMM128).
	double x = (double)n * 1.5, y = (double)n / 3.0, z = x * y + 2.0;
	u64 r = HugeFrame(n);
	return r + (u64)(x + y + z) + (u64)(x * z);
}

#if defined(__x86_64__)
__declspec(noinline) u64 CallsAsm(u64 n) {
	return AsmFramePointer(n + 1) + 1;
}

__declspec(noinline) u64 AsmCallback(u64 n) {
	// Called from AsmFarSaves in unwind.S.
	return FloatWork(n) + 3;
}

u64 DriverEntry(void *driver, void *registry) {
	(void)registry;
	return CallsAsm((u64)driver) + 5;
}
#else
// ARM64 build (kdtdrv_arm64.sys): the C chain only.
__declspec(noinline) u64 WithFrameRecord(u64 n) {
	// alloca forces a frame pointer: a chained frame record (x29, lr).
	volatile char *p = __builtin_alloca(n & 0xF0);
	p[0] = (char)n;
	return FloatWork(n + p[0]) + 7;
}

u64 DriverEntry(void *driver, void *registry) {
	(void)registry;
	return WithFrameRecord((u64)driver) + 5;
}
#endif
