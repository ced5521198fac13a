package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// Images gives the walker the PE image of a module: its unwind tables and
// code bytes. Image returns an error (wrapping ErrNoImage when it simply
// has none) when the image is not available; the walker then falls back to
// frame pointers and scanning for that module. Implementations must be safe
// for concurrent use.
type Images interface {
	Image(ctx context.Context, m kdump.Module) (*pe.File, error)
}

// ErrNoImage is returned (wrapped) by Images implementations that do not
// have a module's image.
var ErrNoImage = errors.New("stack: no image for module")

// MemoryImages reads module images where they are mapped in dump memory
// (kernel and full dumps with the pages present; user-mode dumps with
// code segments). Triage dumps hold no image pages.
type MemoryImages struct {
	Memory kdump.Memory
}

// Image reads the PE headers at the module's base and checks that they
// describe the module (SizeOfImage and, when known, TimeDateStamp).
func (mi MemoryImages) Image(_ context.Context, m kdump.Module) (*pe.File, error) {
	if mi.Memory == nil {
		return nil, fmt.Errorf("%w %s: no memory", ErrNoImage, m.Name)
	}
	f, err := pe.NewImage(mi.Memory, m.Base)
	if err != nil {
		return nil, fmt.Errorf("%w %s at %#x: %w", ErrNoImage, m.Name, m.Base, err)
	}
	if err := checkIdentity(f, m); err != nil {
		return nil, err
	}
	return f, nil
}

func checkIdentity(f *pe.File, m kdump.Module) error {
	if m.Size != 0 && f.OptionalHeader.SizeOfImage != m.Size {
		return fmt.Errorf("%w %s: image SizeOfImage %#x, module size %#x", ErrNoImage, m.Name, f.OptionalHeader.SizeOfImage, m.Size)
	}
	if m.TimeDateStamp != 0 && f.TimeDateStamp != m.TimeDateStamp {
		return fmt.Errorf("%w %s: image TimeDateStamp %#x, module %#x", ErrNoImage, m.Name, f.TimeDateStamp, m.TimeDateStamp)
	}
	return nil
}

// maxDirImage caps the size of an image file DirImages reads.
const maxDirImage = 256 << 20

// DirImages finds module images in a local directory: DIR/NAME, or the
// symbol-store layout DIR/NAME/%08X%x/NAME (TimeDateStamp, SizeOfImage),
// NAME being the base name of the module's path.
// Files whose TimeDateStamp or SizeOfImage differ from the module's are
// rejected. Each image is read into memory whole (at most 256 MiB).
type DirImages struct {
	Dir string
}

// Image implements Images.
func (d DirImages) Image(_ context.Context, m kdump.Module) (*pe.File, error) {
	// Dumps name modules by path (C:\app\x.dll, \SystemRoot\...): the
	// base name is looked up, and only as a safe single path component.
	k := symbols.ImageKey(m.Name, m.TimeDateStamp, m.Size)
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("%w: unusable module name %q: %v", ErrNoImage, m.Name, err)
	}
	name := k.File
	candidates := []string{
		filepath.Join(d.Dir, k.Name, k.ID, k.File),
		filepath.Join(d.Dir, name),
	}
	var firstErr error
	for _, p := range candidates {
		f, err := openWhole(p)
		if err != nil {
			if firstErr == nil && !errors.Is(err, os.ErrNotExist) {
				firstErr = err
			}
			continue
		}
		if err := checkIdentity(f, m); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return f, nil
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, fmt.Errorf("%w %s in %s", ErrNoImage, name, d.Dir)
}

func openWhole(path string) (*pe.File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxDirImage+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDirImage {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxDirImage)
	}
	return pe.NewFile(bytes.NewReader(b))
}

// ImagesChain asks each provider in turn and returns the first image found.
type ImagesChain []Images

// Image implements Images.
func (c ImagesChain) Image(ctx context.Context, m kdump.Module) (*pe.File, error) {
	var errs []error
	for _, p := range c {
		if p == nil {
			continue
		}
		f, err := p.Image(ctx, m)
		if err == nil && f != nil {
			return f, nil
		}
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w %s", ErrNoImage, m.Name)
	}
	return nil, errors.Join(errs...)
}

// CFI gives Breakpad call-frame information for a module (from its .sym
// file: STACK CFI rules; STACK WIN records are exposed through the same
// rules, see below). Rules returns the rules in effect at rva: a map from
// register names ("$rsp", "$eip", "$ebp", ...) and the pseudo-registers
// ".cfa" and ".ra" to postfix expressions in Breakpad syntax
// (".cfa: $rsp 8 +", ".ra: .cfa 8 - ^"). ok is false when the module has
// no rule covering rva.
//
// For x86 STACK WIN FrameData records, return the program string under the
// key ".program" and the record's sizes under ".cbParams", ".cbSavedRegs",
// ".cbLocals" and ".cbPrologue" (decimal or 0x hex); the walker evaluates
// the program.
type CFI interface {
	Rules(ctx context.Context, m kdump.Module, rva uint32) (rules map[string]string, ok bool, err error)
}
