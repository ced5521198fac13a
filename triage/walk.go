package triage

import (
	"context"
	"errors"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/triage/stack"
)

// walkStack returns the frames of the stack that starts at context c, top
// first; frame 0 is always the context's own instruction pointer.
//
// It uses the unwinding walker of package triage/stack (unwind tables when
// an image is available, trap frames, frame pointers, and a validated scan
// otherwise). For machines the walker does not support, and when it fails
// outright, it falls back to the plain scan of scan_fallback.go.
func walkStack(ctx context.Context, mem kdump.Memory, c *kdump.Context, mods []kdump.Module, images stack.Images) ([]rawFrame, []error) {
	if images == nil {
		images = stack.MemoryImages{Memory: mem}
	} else {
		images = stack.ImagesChain{stack.MemoryImages{Memory: mem}, images}
	}
	frames, err := stack.Walk(ctx, stack.Input{Context: c, Memory: mem, Modules: mods, Images: images})
	if len(frames) == 0 {
		var errs []error
		if err != nil && !errors.Is(err, stack.ErrUnsupported) {
			errs = append(errs, err)
		}
		return scanStack(mem, c, mods), errs
	}
	out := make([]rawFrame, len(frames))
	for i, f := range frames {
		out[i] = rawFrame{ip: f.IP, sp: f.SP, foundBy: foundByName(f.FoundBy)}
	}
	if err != nil {
		return out, []error{err}
	}
	return out, nil
}

// foundByName maps the walker's FoundBy to the report's names.
func foundByName(f stack.FoundBy) string {
	switch f {
	case stack.FoundByContext:
		return "context"
	case stack.FoundByCFI:
		return "cfi"
	case stack.FoundByUnwind:
		return "unwind"
	case stack.FoundByTrapFrame:
		return "trap_frame"
	case stack.FoundByFramePointer:
		return "frame_pointer"
	}
	return "scan"
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
