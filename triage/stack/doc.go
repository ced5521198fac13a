// Package stack walks the call stacks of crashed threads: x64 stacks with
// the images' unwind tables (every UWOP code, chained entries, frame
// registers, machine frames), ARM64 stacks with .pdata/.xdata unwind codes
// or the frame-record chain, x86 stacks with Breakpad STACK CFI rules or the
// EBP chain, and, for every architecture, a stack scan that accepts only
// plausible return addresses (inside a module, in its code and right after
// a call instruction when the image bytes are known).
//
// Walk starts from a register context and a readable memory, and asks an
// Images provider for each module's PE image (from dump memory, a symbol
// store or a local directory). Every Frame records how it was found
// (FoundBy), the module and RVA of its instruction pointer, and the
// registers recovered for it.
//
// Kernel trap frames and CONTEXT records found in memory become starting
// contexts through TrapFrameContext and ContextAt; BugCheckStarts finds the
// ones a bug check's parameters name.
//
// # Providers
//
// Images is asked once per module per walk. MemoryImages reads images
// mapped in the dump, DirImages a local directory (flat or symbol-store
// layout), ImagesChain tries several. A symbol-store implementation fetches
// the key symbols.ImageKey(m.Name, m.TimeDateStamp, m.Size) and opens it
// with pe.NewFile; it should cache parsed images across walks (a *pe.File
// is safe for concurrent use and caches its unwind data).
//
// CFI gives Breakpad rules: for package symbols/breakpad,
// File.FindCFI(rva).Merged() is the rule map, and a STACK WIN record with a
// program becomes {".program": Program, ".cbParams": ..., ".cbSavedRegs":
// ..., ".cbLocals": ...}.
//
// # Frames
//
// Frame.Module, ModuleBase and Offset locate IP; LookupOffset is the RVA
// to symbolise (Offset-1 for return addresses). Frames found by scanning are
// guesses: without images every word that points into a module is taken,
// so data pointers show up as frames.
//
// The walk is bounded: at most Input.MaxFrames frames, a capped number of
// stack words scanned per frame, and it stops when the stack pointer does
// not grow (except across machine frames), when a frame repeats, and at
// addresses that are null, non-canonical or in no module.
package stack
