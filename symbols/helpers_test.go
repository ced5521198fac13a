package symbols

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// makeCAB writes a one-file MSZIP cabinet from the MS-CAB layout (blocks of
// 32 KiB, each "CK" + a deflate stream using the previous 32 KiB as
// dictionary, checksums left zero as the format allows).
func makeCAB(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	var blocks bytes.Buffer
	n := 0
	for start := 0; start < len(data) || n == 0; start += 32768 {
		end := min(start+32768, len(data))
		var buf bytes.Buffer
		buf.WriteString("CK")
		w, err := flate.NewWriterDict(&buf, flate.DefaultCompression, data[max(0, start-32768):start])
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data[start:end])
		w.Close()
		var h [8]byte
		binary.LittleEndian.PutUint16(h[4:], uint16(buf.Len()))
		binary.LittleEndian.PutUint16(h[6:], uint16(end-start))
		blocks.Write(h[:])
		blocks.Write(buf.Bytes())
		n++
		if len(data) == 0 {
			break
		}
	}
	var f bytes.Buffer
	var e [16]byte
	binary.LittleEndian.PutUint32(e[0:], uint32(len(data)))
	f.Write(e[:])
	f.WriteString(name)
	f.WriteByte(0)
	coffFiles := 36 + 8
	dataStart := coffFiles + f.Len()
	out := make([]byte, 36, dataStart+blocks.Len())
	copy(out, "MSCF")
	binary.LittleEndian.PutUint32(out[8:], uint32(dataStart+blocks.Len()))
	binary.LittleEndian.PutUint32(out[16:], uint32(coffFiles))
	out[24], out[25] = 3, 1
	binary.LittleEndian.PutUint16(out[26:], 1)
	binary.LittleEndian.PutUint16(out[28:], 1)
	var fo [8]byte
	binary.LittleEndian.PutUint32(fo[0:], uint32(dataStart))
	binary.LittleEndian.PutUint16(fo[4:], uint16(n))
	binary.LittleEndian.PutUint16(fo[6:], 1)
	out = append(out, fo[:]...)
	out = append(out, f.Bytes()...)
	return append(out, blocks.Bytes()...)
}

// content returns n bytes of reproducible, partly compressible data.
func content(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		if i%3 == 0 {
			b[i] = byte(rng.Uint32())
		} else {
			b[i] = byte(i)
		}
	}
	return b
}

// put writes data at root/rel (slash-separated), creating directories.
func put(t testing.TB, root, rel string, data []byte) string {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustChain(t testing.TB, path string, o Options) *Chain {
	t.Helper()
	p, err := ParsePath(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChain(p, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// corpusDir returns the shared corpus directory or skips the test.
func corpusDir(t testing.TB) string {
	t.Helper()
	return kdumptest.CorpusDir(t)
}
