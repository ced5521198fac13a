package kdump

import "fmt"

// ProcessorContext returns the crashing processor's register context as
// the kernel saved it at bug-check time: the CONTEXT that KPRCB.Context
// points to (Windows 7 and later), or the PRCB's inline
// ProcessorState.ContextFrame on older systems. This is the context a
// debugger shows when it opens the dump (RIP in KeBugCheckEx); Context
// returns the dump header's record, which for some bug checks (0x7E and
// its kin) is the faulting context instead.
func (f *File) ProcessorContext() (*Context, error) {
	k, err := f.KDBG()
	if err != nil {
		return nil, err
	}
	var ctxVA uint64
	if f.triage != nil {
		// The triage dump's PRCB copy holds the pointer (or the inline
		// context) even when the PRCB's own address is not recorded.
		if b := f.triage.prcbInlineContext; b != nil {
			return ParseContext(f.hdr.Machine, b)
		}
		if ctxVA = f.triage.prcbContext; ctxVA == 0 {
			return nil, formatErr(int64(f.triage.hdr.PrcbOffset), "PRCB copy", "KPRCB.Context is not recorded").wrap(ErrNotPresent)
		}
	} else {
		c, err := f.crashingCPU()
		if err != nil {
			return nil, err
		}
		switch {
		case k.OffsetPrcbContext != 0:
			ctxVA, err = ReadPointer(f.mem, c.prcb+uint64(k.OffsetPrcbContext), f.ptrSize())
			if err != nil {
				return nil, err
			}
			if ctxVA == 0 {
				return nil, formatErr(-1, "PRCB", "KPRCB.Context of processor %d is null", c.index).wrap(ErrNotPresent)
			}
		case k.OffsetPrcbProcStateContext != 0:
			ctxVA = c.prcb + uint64(k.OffsetPrcbProcStateContext)
		default:
			return nil, formatErr(-1, "KDBG", "the debugger data gives no PRCB context offset").wrap(ErrNotPresent)
		}
	}
	n := ContextSize(f.hdr.Machine)
	if n == 0 {
		return nil, fmt.Errorf("%w: no CONTEXT layout for %v", ErrUnsupported, f.hdr.Machine)
	}
	b := make([]byte, n)
	if _, err := f.mem.ReadVirtual(b, ctxVA); err != nil {
		return nil, err
	}
	return ParseContext(f.hdr.Machine, b)
}
