package kdumptest

import (
	"fmt"
	"io"
	"os"
	"slices"
)

// blockSize is the granularity of an Image's sparse storage.
const blockSize = 4096

// Image is a sparse dump file held in memory: only the blocks that were
// written take space, so a 16 GiB dump with a few MiB of pages costs a few
// MiB. It implements io.ReaderAt (holes read as zeros) and io.WriterAt.
type Image struct {
	size   int64
	blocks map[int64]*[blockSize]byte // keyed by offset / blockSize
}

// NewImage returns an empty image of the given size.
func NewImage(size int64) *Image {
	return &Image{size: size, blocks: make(map[int64]*[blockSize]byte)}
}

// Size returns the file size.
func (im *Image) Size() int64 { return im.size }

// StoredBytes returns how many bytes of storage the written blocks take.
func (im *Image) StoredBytes() int64 { return int64(len(im.blocks)) * blockSize }

// WriteAt writes p at off, growing the image when it ends past Size.
func (im *Image) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("kdumptest: negative offset %d", off)
	}
	for done := 0; done < len(p); {
		at := off + int64(done)
		blk := im.blocks[at/blockSize]
		if blk == nil {
			blk = new([blockSize]byte)
			im.blocks[at/blockSize] = blk
		}
		done += copy(blk[at%blockSize:], p[done:])
	}
	if end := off + int64(len(p)); end > im.size {
		im.size = end
	}
	return len(p), nil
}

// ReadAt implements io.ReaderAt.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("kdumptest: negative offset %d", off)
	}
	if off >= im.size {
		return 0, io.EOF
	}
	want := len(p)
	if rem := im.size - off; int64(want) > rem {
		want = int(rem)
	}
	for done := 0; done < want; {
		at := off + int64(done)
		n := min(want-done, int(blockSize-at%blockSize))
		if blk := im.blocks[at/blockSize]; blk != nil {
			copy(p[done:done+n], blk[at%blockSize:])
		} else {
			clear(p[done : done+n])
		}
		done += n
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// Truncate changes the size, dropping bytes past n (a truncated dump).
func (im *Image) Truncate(n int64) {
	if n < 0 {
		n = 0
	}
	for k, blk := range im.blocks {
		switch start := k * blockSize; {
		case start >= n:
			delete(im.blocks, k)
		case start+blockSize > n:
			clear(blk[n-start:])
		}
	}
	im.size = n
}

// Bytes returns the whole image as one slice. It refuses images over 1 GiB.
func (im *Image) Bytes() ([]byte, error) {
	if im.size > 1<<30 {
		return nil, fmt.Errorf("kdumptest: image of %d bytes is too large for Bytes; use WriteFile", im.size)
	}
	b := make([]byte, im.size)
	_, err := im.ReadAt(b, 0)
	if err == io.EOF {
		err = nil
	}
	return b, err
}

// WriteFile writes the image to f as a sparse file: it truncates f to the
// image size and writes only the stored blocks, so the holes take no disk
// space on file systems that support them.
func (im *Image) WriteFile(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if err := f.Truncate(im.size); err != nil {
		return err
	}
	keys := make([]int64, 0, len(im.blocks))
	for k := range im.blocks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		off := k * blockSize
		n := min(int64(blockSize), im.size-off)
		if n <= 0 {
			continue
		}
		if _, err := f.WriteAt(im.blocks[k][:n], off); err != nil {
			return err
		}
	}
	return nil
}

// WriteTemp writes the image to a new file in dir (os.CreateTemp rules)
// and returns its path.
func (im *Image) WriteTemp(dir, pattern string) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	if err := im.WriteFile(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}

// Clone returns an independent copy of the image.
func (im *Image) Clone() *Image {
	c := &Image{size: im.size, blocks: make(map[int64]*[blockSize]byte, len(im.blocks))}
	for k, b := range im.blocks {
		nb := *b
		c.blocks[k] = &nb
	}
	return c
}

// Blocks returns the file offsets of the stored blocks, sorted: the parts
// of the file that hold something (for tests that patch a dump).
func (im *Image) Blocks() []int64 {
	out := make([]int64, 0, len(im.blocks))
	for k := range im.blocks {
		out = append(out, k*blockSize)
	}
	slices.Sort(out)
	return out
}
