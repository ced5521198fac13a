package triage

import "github.com/kdtriage/kdtriage/kdump"

// walkStack returns the frames of the stack that starts at context c,
// top first; frame 0 is always the context's own instruction pointer.
//
// It uses the validated stack scan of scan_fallback.go. The unwinding
// walker of package triage/stack replaces it here when it lands; the rest
// of the analysis only sees rawFrame values and their foundBy kinds
// ("context", "cfi", "frame_pointer", "scan"), so the switch is this
// function alone.
func walkStack(mem kdump.Memory, c *kdump.Context, mods []kdump.Module) []rawFrame {
	return scanStack(mem, c, mods)
}

// trusted reports whether a frame was found by a method that proves it
// (the context or unwind data) rather than by scanning for values that
// look like return addresses.
func trusted(foundBy string) bool {
	switch foundBy {
	case "context", "ip_param", "cfi", "unwind", "frame_pointer", "trap_frame":
		return true
	}
	return false
}
