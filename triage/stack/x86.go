package stack

import (
	"github.com/kdtriage/kdtriage/kdump"
)

// callerX86 unwinds one x86 frame: Breakpad STACK CFI / STACK WIN rules,
// then the EBP chain, then a stack scan.
func (w *walker) callerX86(f *Frame, first bool) (Frame, bool) {
	m, _ := w.module(f.IP)
	if m != nil && w.in.CFI != nil {
		c, valid, ok := w.cfiCaller(f, m, first)
		if ok && c.PC == 0 {
			return Frame{}, false // the rules say this is the outermost frame
		}
		if ok && w.plausibleCaller(f, &c, false) {
			nf := w.newFrame(c, valid, FoundByCFI)
			nf.calleeParams = w.lastParams
			return nf, true
		}
	}
	if c, ok := w.framePointer(f); ok {
		return w.newFrame(c, RegSet(1)<<kdump.RegRSP|RegSet(1)<<kdump.RegRBP, FoundByFramePointer), true
	}
	return w.scan(f, first)
}
