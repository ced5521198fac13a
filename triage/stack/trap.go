package stack

import (
	"encoding/binary"
	"fmt"

	"github.com/kdtriage/kdtriage/kdump"
)

// KTRAP_FRAME (x64) layout, 0x190 bytes. Offsets as shown by the kernel's
// public type information (dt nt!_KTRAP_FRAME): the volatile registers
// are saved at 0x30..0x60, Rbx/Rdi/Rsi/Rbp at 0x140..0x158 (these four are
// not always saved: treat them as hints), then the machine frame.
const (
	KTrapFrameSizeAMD64 = 0x190

	ktfRax    = 0x30
	ktfRcx    = 0x38
	ktfRdx    = 0x40
	ktfR8     = 0x48
	ktfR9     = 0x50
	ktfR10    = 0x58
	ktfR11    = 0x60
	ktfRbx    = 0x140
	ktfRdi    = 0x148
	ktfRsi    = 0x150
	ktfRbp    = 0x158
	ktfRip    = 0x168
	ktfSegCs  = 0x170
	ktfEFlags = 0x178
	ktfRsp    = 0x180
	ktfSegSs  = 0x188
)

// TrapFrameContext builds a context from the x64 KTRAP_FRAME at va (e.g.
// bug check 0x3B P3 is a CONTEXT, 0x7E P4 a CONTEXT, 0x1E/0x8E/0x50 name
// trap frames through the stack). Rip, Rsp, EFlags, the segment selectors
// and the volatile registers are reliable; Rbx, Rdi, Rsi and Rbp are
// included but may be stale (the kernel saves them only on some paths).
func TrapFrameContext(mem kdump.Memory, va uint64) (*kdump.Context, error) {
	var b [KTrapFrameSizeAMD64]byte
	if _, err := mem.ReadVirtual(b[:], va); err != nil {
		return nil, fmt.Errorf("stack: reading KTRAP_FRAME at %#x: %w", va, err)
	}
	le := binary.LittleEndian
	c := &kdump.Context{Machine: kdump.MachineAMD64}
	for reg, off := range map[int]int{
		kdump.RegRAX: ktfRax, kdump.RegRCX: ktfRcx, kdump.RegRDX: ktfRdx, kdump.RegR8: ktfR8,
		kdump.RegR8 + 1: ktfR9, kdump.RegR8 + 2: ktfR10, kdump.RegR8 + 3: ktfR11,
		kdump.RegRBX: ktfRbx, kdump.RegRDI: ktfRdi, kdump.RegRSI: ktfRsi, kdump.RegRBP: ktfRbp,
		kdump.RegRSP: ktfRsp,
	} {
		c.GPR[reg] = le.Uint64(b[off:])
	}
	c.PC = le.Uint64(b[ktfRip:])
	c.SegCs = le.Uint16(b[ktfSegCs:])
	c.Status = le.Uint32(b[ktfEFlags:])
	c.SegSs = le.Uint16(b[ktfSegSs:])
	if c.PC == 0 || c.GPR[kdump.RegRSP] == 0 {
		return nil, fmt.Errorf("stack: KTRAP_FRAME at %#x has no Rip/Rsp", va)
	}
	return c, nil
}

// ContextAt reads a CONTEXT record of machine m at va (e.g. bug check 0x3B
// and 0x7E parameter 3/4) and decodes it with kdump.ParseContext.
func ContextAt(mem kdump.Memory, m kdump.Machine, va uint64) (*kdump.Context, error) {
	size := kdump.ContextSize(m)
	if size == 0 {
		return nil, fmt.Errorf("%w: no CONTEXT layout for %v", ErrUnsupported, m)
	}
	b := make([]byte, size)
	n, err := mem.ReadVirtual(b, va)
	if err != nil {
		// The integer and control parts come first; accept a short read
		// that covers them.
		if n == 0 {
			return nil, fmt.Errorf("stack: reading CONTEXT at %#x: %w", va, err)
		}
		b = b[:n]
	}
	c, err := kdump.ParseContext(m, b)
	if err != nil {
		return nil, fmt.Errorf("stack: CONTEXT at %#x: %w", va, err)
	}
	return c, nil
}

// Start is a register context to start a walk from and where it came from.
type Start struct {
	// Source says which record it is, e.g. "CONTEXT (P4)" or
	// "KTRAP_FRAME (P3)".
	Source  string
	Address uint64 // the record's address
	Context *kdump.Context
}

// BugCheckStarts returns the starting contexts named by a bug check's
// parameters, read from mem: the CONTEXT of 0x3B (P3) and 0x7E (P4), the
// KTRAP_FRAME of 0x8E (P3) and 0x139 (P2), x64 only for trap frames. The
// "_M" variants (0x1000xxxx) are handled like the plain codes. Records that
// cannot be read are reported in errs; codes without such a parameter give
// nothing.
func BugCheckStarts(m kdump.Machine, code uint32, params [4]uint64, mem kdump.Memory) (starts []Start, errs []error) {
	type ref struct {
		param int
		trap  bool
	}
	var refs []ref
	switch code &^ 0x10000000 {
	case 0x3B: // SYSTEM_SERVICE_EXCEPTION
		refs = []ref{{2, false}}
	case 0x7E: // SYSTEM_THREAD_EXCEPTION_NOT_HANDLED
		refs = []ref{{3, false}}
	case 0x8E: // KERNEL_MODE_EXCEPTION_NOT_HANDLED
		refs = []ref{{2, true}}
	case 0x139: // KERNEL_SECURITY_CHECK_FAILURE
		refs = []ref{{1, true}}
	}
	for _, r := range refs {
		va := params[r.param]
		if va == 0 {
			continue
		}
		var c *kdump.Context
		var err error
		src := fmt.Sprintf("CONTEXT (P%d)", r.param+1)
		if r.trap {
			if m != kdump.MachineAMD64 {
				continue
			}
			src = fmt.Sprintf("KTRAP_FRAME (P%d)", r.param+1)
			c, err = TrapFrameContext(mem, va)
		} else {
			c, err = ContextAt(mem, m, va)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s at %#x: %w", src, va, err))
			continue
		}
		starts = append(starts, Start{Source: src, Address: va, Context: c})
	}
	return starts, errs
}
