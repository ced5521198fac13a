package triage

import (
	"encoding/binary"

	"github.com/kdtriage/kdtriage/kdump"
)

// Limits of the stack scan.
const (
	maxScanBytes  = 64 << 10 // kernel stacks are 12-24 KiB; large stacks at most 64 KiB
	maxScanFrames = 64
	// minCodeRVA skips values that point into a module's headers (the
	// first page holds the PE headers, never code).
	minCodeRVA = 0x1000
)

// rawFrame is a frame before naming: an instruction address, the stack
// pointer it was found at and how it was found.
type rawFrame struct {
	ip, sp  uint64
	foundBy string
}

// scanStack is the stack walk used until the unwinding walker is wired in:
// frame 0 is the context's instruction pointer; then every pointer-sized
// slot from the stack pointer upwards (as far as the dump holds the stack)
// whose value lies in the code part of a loaded module is taken as a
// return address. Without image bytes a candidate cannot be checked
// against a preceding call instruction, so frames found this way are
// marked "scan" and weigh less in the blame.
func scanStack(mem kdump.Memory, c *kdump.Context, mods []kdump.Module) []rawFrame {
	frames := []rawFrame{{ip: c.IP(), sp: c.SP(), foundBy: "context"}}
	if mem == nil {
		return frames
	}
	ptr := 8
	if c.Machine.PointerSize() == 4 {
		ptr = 4
	}
	sp := c.SP()
	if sp == 0 || sp%uint64(ptr) != 0 {
		return frames
	}
	buf := readAvailable(mem, sp, maxScanBytes)
	var last uint64
	for off := 0; off+ptr <= len(buf) && len(frames) < maxScanFrames; off += ptr {
		var v uint64
		if ptr == 8 {
			v = binary.LittleEndian.Uint64(buf[off:])
		} else {
			v = uint64(binary.LittleEndian.Uint32(buf[off:]))
		}
		m := kdump.ModuleAt(mods, v)
		if m == nil || v-m.Base < minCodeRVA {
			continue
		}
		if v == last { // the same value in adjacent slots is data, not two calls
			continue
		}
		last = v
		frames = append(frames, rawFrame{ip: v, sp: sp + uint64(off), foundBy: "scan"})
	}
	return frames
}

// readAvailable reads up to max bytes at addr, stopping at the first byte
// the dump does not hold. Reads go page by page so that a missing page
// ends the scan instead of failing it.
func readAvailable(mem kdump.Memory, addr uint64, max int) []byte {
	const page = 0x1000
	var out []byte
	for len(out) < max {
		n := page - int(addr%page)
		n = min(n, max-len(out))
		chunk := make([]byte, n)
		got, err := mem.ReadVirtual(chunk, addr)
		out = append(out, chunk[:got]...)
		if err != nil || got < n {
			break
		}
		if addr+uint64(n) < addr {
			break
		}
		addr += uint64(n)
	}
	return out
}
