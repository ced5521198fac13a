package cab

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// The builder below writes cabinets from the MS-CAB layout for tests; it
// shares no code with the reader except the checksum function.

type tfile struct {
	name   string
	data   []byte
	folder int
}

type tfolder struct {
	comp      CompressionType
	blockSize int
}

type built struct {
	cab        []byte
	blockSizes [][]int // compressed bytes per block, per folder
}

func buildCAB(t testing.TB, folders []tfolder, files []tfile, withSum bool) built {
	t.Helper()
	// Folder streams.
	streams := make([][]byte, len(folders))
	offsets := make([]uint32, len(files))
	for i, f := range files {
		offsets[i] = uint32(len(streams[f.folder]))
		streams[f.folder] = append(streams[f.folder], f.data...)
	}
	// Blocks per folder.
	var blocks [][][]byte // folder -> block -> CFDATA bytes
	var sizes [][]int
	for fi, fo := range folders {
		s := streams[fi]
		var bl [][]byte
		var sz []int
		var history []byte
		for start := 0; start < len(s); start += fo.blockSize {
			end := min(start+fo.blockSize, len(s))
			raw := s[start:end]
			var payload []byte
			switch fo.comp {
			case CompressMSZIP:
				var buf bytes.Buffer
				buf.WriteString("CK")
				dict := history[max(0, len(history)-32768):]
				w, err := flate.NewWriterDict(&buf, flate.BestCompression, dict)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(raw)
				w.Close()
				payload = buf.Bytes()
				history = append(history, raw...)
			default:
				payload = append([]byte(nil), raw...)
			}
			hdr := make([]byte, 8)
			binary.LittleEndian.PutUint16(hdr[4:], uint16(len(payload)))
			binary.LittleEndian.PutUint16(hdr[6:], uint16(len(raw)))
			if withSum {
				binary.LittleEndian.PutUint32(hdr[0:], checksum(hdr[4:8], checksum(payload, 0)))
			}
			bl = append(bl, append(hdr, payload...))
			sz = append(sz, len(payload))
		}
		blocks = append(blocks, bl)
		sizes = append(sizes, sz)
	}
	// Layout.
	var fileTab bytes.Buffer
	for i, f := range files {
		var e [16]byte
		binary.LittleEndian.PutUint32(e[0:], uint32(len(f.data)))
		binary.LittleEndian.PutUint32(e[4:], offsets[i])
		binary.LittleEndian.PutUint16(e[8:], uint16(f.folder))
		binary.LittleEndian.PutUint16(e[10:], 0x4f79) // 2019-11-25
		binary.LittleEndian.PutUint16(e[12:], 0x5442) // 10:34:04
		binary.LittleEndian.PutUint16(e[14:], 0x20)
		fileTab.Write(e[:])
		fileTab.WriteString(f.name)
		fileTab.WriteByte(0)
	}
	coffFiles := 36 + 8*len(folders)
	dataStart := coffFiles + fileTab.Len()
	var folderTab, data bytes.Buffer
	for fi, fo := range folders {
		var e [8]byte
		binary.LittleEndian.PutUint32(e[0:], uint32(dataStart+data.Len()))
		binary.LittleEndian.PutUint16(e[4:], uint16(len(blocks[fi])))
		binary.LittleEndian.PutUint16(e[6:], uint16(fo.comp))
		folderTab.Write(e[:])
		for _, b := range blocks[fi] {
			data.Write(b)
		}
	}
	total := dataStart + data.Len()
	h := make([]byte, 36)
	copy(h, "MSCF")
	binary.LittleEndian.PutUint32(h[8:], uint32(total))
	binary.LittleEndian.PutUint32(h[16:], uint32(coffFiles))
	h[24], h[25] = 3, 1
	binary.LittleEndian.PutUint16(h[26:], uint16(len(folders)))
	binary.LittleEndian.PutUint16(h[28:], uint16(len(files)))
	out := append(h, folderTab.Bytes()...)
	out = append(out, fileTab.Bytes()...)
	out = append(out, data.Bytes()...)
	return built{cab: out, blockSizes: sizes}
}

// repetitive returns n bytes made of a random 8 KiB chunk repeated, so a
// block compresses well only by referring to earlier blocks.
func repetitive(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	chunk := make([]byte, 8192)
	for i := range chunk {
		chunk[i] = byte(rng.Uint32())
	}
	out := make([]byte, n)
	for i := 0; i < n; i += len(chunk) {
		copy(out[i:], chunk)
	}
	return out
}

func readAll(t *testing.T, f *File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatalf("Open %s: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", f.Name, err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	big := repetitive(1, 150000)
	small := []byte("hello, cabinet\n")
	tests := []struct {
		name    string
		folders []tfolder
		files   []tfile
		sum     bool
	}{
		{"mszip one file", []tfolder{{CompressMSZIP, 32768}}, []tfile{{"a.pdb", big, 0}}, true},
		{"mszip no checksums", []tfolder{{CompressMSZIP, 32768}}, []tfile{{"a.pdb", big, 0}}, false},
		{"mszip small blocks", []tfolder{{CompressMSZIP, 1000}}, []tfile{{"a.pdb", big[:40000], 0}}, true},
		{"mszip two files one folder", []tfolder{{CompressMSZIP, 32768}}, []tfile{{"x.dll", small, 0}, {"y.pdb", big, 0}}, true},
		{"stored", []tfolder{{CompressNone, 4000}}, []tfile{{"s.sys", big[:10001], 0}}, true},
		{"two folders", []tfolder{{CompressNone, 4096}, {CompressMSZIP, 32768}}, []tfile{{"s.txt", small, 0}, {"m.pdb", big, 1}}, true},
		{"empty file", []tfolder{{CompressMSZIP, 32768}}, []tfile{{"e", nil, 0}, {"f", small, 0}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildCAB(t, tt.folders, tt.files, tt.sum)
			r, err := NewReader(bytes.NewReader(b.cab), int64(len(b.cab)))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Files) != len(tt.files) {
				t.Fatalf("%d files, want %d", len(r.Files), len(tt.files))
			}
			for i, want := range tt.files {
				f := r.Files[i]
				if f.Name != want.name || int(f.Size) != len(want.data) {
					t.Errorf("file %d = %q/%d, want %q/%d", i, f.Name, f.Size, want.name, len(want.data))
				}
				if got := readAll(t, f); !bytes.Equal(got, want.data) {
					t.Errorf("file %s: contents differ (%d vs %d bytes)", f.Name, len(got), len(want.data))
				}
				if f.Modified.Year() != 2019 || f.Modified.Hour() != 10 {
					t.Errorf("Modified = %v", f.Modified)
				}
			}
		})
	}
}

// TestDictionaryCarried proves the fixture really depends on the history
// window: later blocks are far smaller than 8 KiB of random data could be
// on its own, so they decode only with the previous block as dictionary.
func TestDictionaryCarried(t *testing.T) {
	b := buildCAB(t, []tfolder{{CompressMSZIP, 8192}}, []tfile{{"a", repetitive(7, 8192*5), 0}}, true)
	sz := b.blockSizes[0]
	if sz[0] < 8000 {
		t.Fatalf("first block %d bytes: random data should not compress", sz[0])
	}
	for i, s := range sz[1:] {
		if s > 200 {
			t.Fatalf("block %d is %d bytes: no back-references into the previous block", i+1, s)
		}
	}
	r, err := NewReader(bytes.NewReader(b.cab), int64(len(b.cab)))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r.Files[0]); !bytes.Equal(got, repetitive(7, 8192*5)) {
		t.Fatal("contents differ")
	}
}

func TestErrors(t *testing.T) {
	good := buildCAB(t, []tfolder{{CompressMSZIP, 32768}}, []tfile{{"a.pdb", repetitive(3, 70000), 0}}, true).cab
	two := buildCAB(t, []tfolder{{CompressNone, 100}, {CompressMSZIP, 100}}, []tfile{{"a", []byte("x"), 0}, {"b", []byte("y"), 1}}, true).cab
	mod := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	le16 := func(b []byte, off int, v uint16) []byte { binary.LittleEndian.PutUint16(b[off:], v); return b }
	tests := []struct {
		name     string
		data     []byte
		lim      Limits
		openErr  error // from NewReader
		readErr  error // from reading the first file
		anyError bool  // some *FormatError from NewReader without a sentinel
	}{
		{name: "not a cab", data: []byte("MZ\x90\x00 this is a PE file, not a cabinet......."), openErr: ErrNotCAB},
		{name: "empty", data: nil, anyError: true},
		{name: "truncated", data: good[:len(good)-10], anyError: true},
		{name: "lzx", data: mod(func(b []byte) []byte { return le16(b, 36+6, 0x1503) }), readErr: ErrUnsupported},
		{name: "quantum", data: mod(func(b []byte) []byte { return le16(b, 36+6, 0x0002) }), readErr: ErrUnsupported},
		{name: "next cabinet", data: mod(func(b []byte) []byte { return le16(b, 30, flagNextCabinet) }), openErr: ErrUnsupported},
		{name: "continued file", data: mod(func(b []byte) []byte { return le16(b, 44+8, 0xFFFD) }), openErr: ErrUnsupported},
		{name: "version 2", data: mod(func(b []byte) []byte { b[25] = 2; return b }), openErr: ErrUnsupported},
		{name: "file too large", data: good, lim: Limits{MaxFolders: 1, MaxFileSize: 1}, readErr: ErrLimit},
		{name: "too many files", data: two, lim: Limits{MaxFiles: 1}, openErr: ErrLimit},
		{name: "too many folders", data: two, lim: Limits{MaxFolders: 1}, openErr: ErrLimit},
		{name: "bad checksum", data: mod(func(b []byte) []byte { b[len(b)-1] ^= 0x55; return b }), readErr: ErrChecksum},
		{name: "folder index out of range", data: mod(func(b []byte) []byte { return le16(b, 44+8, 5) }), anyError: true},
		{name: "file table offset past end", data: mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 0x7fffffff); return b }), anyError: true},
		{name: "unterminated name", data: mod(func(b []byte) []byte { return b[:44+16+3] }), anyError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := tt.lim
			if lim == (Limits{}) {
				lim = DefaultLimits()
			}
			r, err := NewReaderLimits(bytes.NewReader(tt.data), int64(len(tt.data)), lim)
			switch {
			case tt.openErr != nil:
				if !errors.Is(err, tt.openErr) {
					t.Fatalf("NewReader error %v, want %v", err, tt.openErr)
				}
				return
			case tt.anyError:
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("NewReader error %v, want a *FormatError", err)
				}
				return
			case err != nil:
				t.Fatalf("NewReader: %v", err)
			}
			rc, err := r.Files[0].Open()
			if err == nil {
				_, err = io.ReadAll(rc)
			}
			if !errors.Is(err, tt.readErr) {
				t.Fatalf("read error %v, want %v", err, tt.readErr)
			}
		})
	}
}

func TestChecksumKnownValues(t *testing.T) {
	// Trailing bytes are folded in with the first one highest.
	tests := []struct {
		in   []byte
		want uint32
	}{
		{[]byte{1, 2, 3, 4}, 0x04030201},
		{[]byte{1, 2, 3, 4, 5}, 0x04030201 ^ 0x05},
		{[]byte{1, 2, 3, 4, 5, 6}, 0x04030201 ^ 0x0506},
		{[]byte{1, 2, 3, 4, 5, 6, 7}, 0x04030201 ^ 0x050607},
		{nil, 0},
	}
	for _, tt := range tests {
		if got := checksum(tt.in, 0); got != tt.want {
			t.Errorf("checksum(%x) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

// corpusDir returns the shared corpus directory or skips the test.
func corpusDir(t testing.TB) string {
	t.Helper()
	return kdumptest.CorpusDir(t)
}

// TestCorpusBasic32 unpacks the real symbol-server file basic32.pd_, whose
// blocks carry checksums, to a PDB.
func TestCorpusBasic32(t *testing.T) {
	path := filepath.Join(corpusDir(t), "symbols", "basic32.pd_")
	r, err := OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.Files) != 1 || r.Files[0].Name != "basic32.pdb" {
		t.Fatalf("files = %+v, want basic32.pdb alone", r.Files)
	}
	if r.Folders[0].Compression != CompressMSZIP {
		t.Fatalf("compression %v, want MSZIP", r.Folders[0].Compression)
	}
	got := readAll(t, r.Files[0])
	if int64(len(got)) != int64(r.Files[0].Size) {
		t.Fatalf("got %d bytes, want %d", len(got), r.Files[0].Size)
	}
	const magic = "Microsoft C/C++ MSF 7.00\r\n\x1aDS\x00\x00\x00"
	if !bytes.HasPrefix(got, []byte(magic)) {
		t.Fatalf("unpacked file starts %q, not with the MSF 7.00 magic", got[:32])
	}
	// The MSF superblock's block size times its block count is the file
	// size: a cheap check that nothing was lost in the middle.
	blockSize := binary.LittleEndian.Uint32(got[32:])
	numBlocks := binary.LittleEndian.Uint32(got[40:])
	if int64(blockSize)*int64(numBlocks) != int64(len(got)) {
		t.Fatalf("MSF says %d blocks of %d bytes, file has %d bytes", numBlocks, blockSize, len(got))
	}
}

// BenchmarkMSZIP unpacks a 4 MiB file from 128 MSZIP blocks.
func BenchmarkMSZIP(b *testing.B) {
	data := repetitive(5, 4<<20)
	for i := 0; i < len(data); i += 4096 { // make it less trivially compressible
		data[i] ^= byte(i >> 12)
	}
	c := buildCAB(b, []tfolder{{CompressMSZIP, 32768}}, []tfile{{"x.pdb", data, 0}}, true).cab
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(c), int64(len(c)))
		if err != nil {
			b.Fatal(err)
		}
		rc, err := r.Files[0].Open()
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, rc); err != nil || n != int64(len(data)) {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(len(c))/float64(len(data)), "compressed/raw")
}
