package triage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols"
	"github.com/kdtriage/kdtriage/symbols/pe"
	"github.com/kdtriage/kdtriage/triage/stack"
)

// maxStoreImage caps the size of a module image read from a symbol store.
const maxStoreImage = 256 << 20

// storeImages fetches module images from a symbol store by their image key
// (TimeDateStamp + SizeOfImage), for the stack walker's unwind tables.
type storeImages struct{ store symbols.Store }

// StoreImages returns a stack.Images that fetches module images from a
// symbol store (a symbols.Chain over a symbol path). Small dumps hold no
// image pages, so this is what lets the walker use unwind tables on them.
func StoreImages(s symbols.Store) stack.Images {
	if s == nil {
		return nil
	}
	return storeImages{s}
}

// Image implements stack.Images.
func (si storeImages) Image(ctx context.Context, m kdump.Module) (*pe.File, error) {
	if m.TimeDateStamp == 0 || m.Size == 0 {
		return nil, fmt.Errorf("%w %s: no image key", stack.ErrNoImage, m.Name)
	}
	name := m.Name
	if name == "" {
		name = m.Path
	}
	path, err := si.store.Fetch(ctx, symbols.ImageKey(name, m.TimeDateStamp, m.Size))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", stack.ErrNoImage, m.Name, err)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxStoreImage+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStoreImage {
		return nil, fmt.Errorf("%w %s: image larger than %d bytes", stack.ErrNoImage, m.Name, maxStoreImage)
	}
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", stack.ErrNoImage, m.Name, err)
	}
	if f.OptionalHeader.SizeOfImage != m.Size || f.TimeDateStamp != m.TimeDateStamp {
		return nil, fmt.Errorf("%w %s: the store's image does not match the module", stack.ErrNoImage, m.Name)
	}
	return f, nil
}
