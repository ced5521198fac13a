package kdump

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// The overlay keeps the bytes of the candidate added first wherever
// candidates overlap, and reads across adjacent ranges.
func TestOverlayPreference(t *testing.T) {
	file := make([]byte, 0x100)
	for i := range file {
		file[i] = byte(i)
	}
	o := &overlay{r: bytes.NewReader(file)}
	o.add(0x1010, 0x10, 0x10, "first")  // [0x1010,0x1020) -> file 0x10
	o.add(0x1000, 0x40, 0x80, "second") // [0x1000,0x1040) -> file 0x80, loses the middle
	o.add(0x1040, 0x10, 0x40, "third")  // adjacent
	o.add(0x1018, 0x4, 0xF0, "fourth")  // fully covered by first
	o.add(0x2000, 0, 0, "empty")
	o.build()
	tests := []struct {
		va   uint64
		want byte
	}{
		{0x1000, 0x80}, {0x100F, 0x8F}, {0x1010, 0x10}, {0x1018, 0x18}, {0x101F, 0x1F},
		{0x1020, 0xA0}, {0x103F, 0xBF}, {0x1040, 0x40}, {0x104F, 0x4F},
	}
	for _, tt := range tests {
		var b [1]byte
		if _, err := o.ReadVirtual(b[:], tt.va); err != nil || b[0] != tt.want {
			t.Errorf("byte at %#x = %#x, %v; want %#x", tt.va, b[0], err, tt.want)
		}
	}
	// One read spanning all pieces.
	buf := make([]byte, 0x50)
	if n, err := o.ReadVirtual(buf, 0x1000); n != 0x50 || err != nil {
		t.Fatalf("spanning read: %d, %v", n, err)
	}
	// Past the end: a partial read and ErrNotPresent at the first missing byte.
	n, err := o.ReadVirtual(make([]byte, 0x20), 0x1040)
	var me *MemoryError
	if n != 0x10 || !errors.As(err, &me) || me.Addr != 0x1050 || !errors.Is(err, ErrNotPresent) {
		t.Errorf("read past the end: n=%#x err=%v", n, err)
	}
	got := o.Ranges()
	want := []Range{{0x1000, 0x1010, "second"}, {0x1010, 0x1020, "first"}, {0x1020, 0x1040, "second"}, {0x1040, 0x1050, "third"}}
	if len(got) != len(want) {
		t.Fatalf("ranges %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("range %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// shortReader returns fewer bytes than asked without an error, as a
// broken io.ReaderAt might.
type shortReader struct{}

func (shortReader) ReadAt(p []byte, off int64) (int, error) { return 0, nil }

// A reader that returns short reads without an error ends the read with an
// error instead of looping.
func TestOverlayShortRead(t *testing.T) {
	o := &overlay{r: shortReader{}}
	o.add(0x1000, 0x100, 0x40, "stack")
	o.build()
	done := make(chan struct{})
	var n int
	var err error
	go func() {
		n, err = o.ReadVirtual(make([]byte, 0x10), 0x1000)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ReadVirtual did not return")
	}
	var fe *FormatError
	if n != 0 || !errors.As(err, &fe) || fe.Offset != 0x40 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("n=%d err=%v", n, err)
	}
}
