package drvtest

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols/cab"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// TestWriteCAB writes single-file MSZIP cabinets of several sizes and reads
// them back with the project's reader and, when installed, with gcab.
func TestWriteCAB(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := bytes.Repeat([]byte("kdtdrv!LeafTouch+0x0 "), 9000)
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"empty", nil}, {"one", []byte{7}}, {"block", random(0x8000)}, {"random", random(100001)}, {"text", text},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteCAB(&b, "file.bin", tt.data); err != nil {
				t.Fatal(err)
			}
			r, err := cab.NewReader(bytes.NewReader(b.Bytes()), int64(b.Len()))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Files) != 1 || r.Files[0].Name != "file.bin" || int(r.Files[0].Size) != len(tt.data) {
				t.Fatalf("files %+v", r.Files)
			}
			rc, err := r.Files[0].Open()
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(tt.data))
			}
			if !HaveGcab() {
				return
			}
			dir := t.TempDir()
			p := filepath.Join(dir, "x.cab")
			if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("gcab", "-x", "-C", dir, p)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("gcab -x: %v: %s", err, out)
			}
			ext, err := os.ReadFile(filepath.Join(dir, "file.bin"))
			if err != nil || !bytes.Equal(ext, tt.data) {
				t.Fatalf("gcab extracted %d bytes (%v), want %d", len(ext), err, len(tt.data))
			}
		})
	}
}

// TestBuild checks the scene's dump opens, names the driver with its
// identity, and holds the records and stack the scene describes.
func TestBuild(t *testing.T) {
	for _, tt := range []struct {
		name   string
		opts   Options
		frames int
	}{
		{"default", Options{}, 12},
		{"30 frames", Options{Chain: LongChain(30)}, 30},
		{"image in memory", Options{ImageInMemory: true}, 12},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Build(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Frames) != tt.frames || s.Frames[0].FoundBy != "context" || s.Frames[0].IP != s.FaultIP {
				t.Fatalf("%d frames, first %+v", len(s.Frames), s.Frames[0])
			}
			b, err := s.Dump.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			f, err := kdump.NewFile(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			if p := f.Problems(); len(p) != 0 {
				t.Errorf("problems: %v", p)
			}
			mods, err := f.Modules()
			if err != nil {
				t.Fatal(err)
			}
			m := kdump.ModuleAt(mods, s.FaultIP)
			if m == nil || m.Name != ModuleName || m.Base != Base || m.Size != s.SizeOfImage || m.TimeDateStamp != s.TimeDateStamp {
				t.Fatalf("module at the fault: %+v", m)
			}
			bc := f.BugCheck()
			if bc.Code != 0x1000007E || bc.Params[1] != s.FaultIP || bc.Params[2] != s.ExceptionRecord || bc.Params[3] != s.ContextRecord {
				t.Errorf("bug check %#x %#x", bc.Code, bc.Params)
			}
			mem := f.Memory()
			for _, fr := range s.Frames[1:] {
				if fr.FoundBy != "unwind" {
					continue
				}
				if ra, err := kdump.ReadU64(mem, fr.SP-8); err != nil || ra != fr.IP {
					t.Errorf("%s: return address %#x (%v), want %#x", fr.Function, ra, err, fr.IP)
				}
			}
			rip, err := kdump.ReadU64(mem, s.ContextRecord+0xF8)
			if err != nil || rip != s.FaultIP {
				t.Errorf("context record RIP %#x (%v)", rip, err)
			}
			var mz [2]byte
			_, err = mem.ReadVirtual(mz[:], Base)
			if got := err == nil && string(mz[:]) == "MZ"; got != tt.opts.ImageInMemory {
				t.Errorf("image header readable: %v (%v), want %v", got, err, tt.opts.ImageInMemory)
			}
		})
	}
	if _, err := Build(Options{Chain: []Link{{"DriverEntry", "NoSuchFunction", false, ""}}}); err == nil {
		t.Error("unknown function accepted")
	}
}

// TestLayStack lays the driver's stack with LayStack: each frame's return
// address (or machine frame's RIP) lies in the stack just below its SP, the
// stack grows downwards frame by frame, and a stack too small for the chain,
// an empty chain or a missing export is an error, not a panic.
func TestLayStack(t *testing.T) {
	dir, err := FindDriversDir()
	if err != nil {
		t.Fatal(err)
	}
	img, err := pe.Open(filepath.Join(dir, "kdtdrv.sys"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	const high = 0xffff850400900000
	for _, tt := range []struct {
		name   string
		chain  []Link
		size   uint64
		frames int // 0: an error
	}{
		{"default", nil, 0x280000, 12},
		{"long", LongChain(34), 0x800000, 34},
		{"epilog chain", DefaultChain()[:2], 0x10000, 3},
		{"too small", nil, 0x10000, 0},
		{"empty", []Link{}, 0x280000, 0},
		{"missing export", []Link{{"DriverEntry", "NoSuchFunction", false, ""}}, 0x280000, 0},
		{"tiny", nil, 8, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, err := LayStack(img, tt.chain, high, tt.size)
			if tt.frames == 0 {
				if err == nil {
					t.Fatalf("no error, %d frames", len(st.Frames))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Frames) != tt.frames || st.Low != high-tt.size || uint64(len(st.Data)) != tt.size {
				t.Fatalf("%d frames, stack %#x+%#x", len(st.Frames), st.Low, len(st.Data))
			}
			if f := st.Frames[0]; f.FoundBy != "context" || f.Offset != 0 || f.Regs[4] != f.SP {
				t.Errorf("top frame %+v", f)
			}
			for i, f := range st.Frames[1:] {
				if i > 0 && f.SP <= st.Frames[i].SP || f.Regs[4] != f.SP || f.IP-Base-f.Offset != uint64(mustRVA(t, img, f.Function)) {
					t.Errorf("frame %d %s: sp %#x after %#x, offset %#x", i+1, f.Function, f.SP, st.Frames[i].SP, f.Offset)
				}
				at := f.SP - 8 // the return address
				if f.FoundBy == "trap_frame" {
					// The machine frame below the aligned SP: SS, RSP,
					// RFLAGS, CS, RIP.
					at = f.SP&^15 - 40
					if got := le.Uint64(st.Data[at+24-st.Low:]); got != f.SP {
						t.Errorf("frame %d %s: machine frame RSP %#x, want %#x", i+1, f.Function, got, f.SP)
					}
				}
				if got := le.Uint64(st.Data[at-st.Low:]); got != f.IP {
					t.Errorf("frame %d %s: %#x at %#x, want IP %#x", i+1, f.Function, got, at, f.IP)
				}
			}
		})
	}
}

func mustRVA(t *testing.T, img *pe.File, name string) uint32 {
	t.Helper()
	rvas, err := exportRVAs(img)
	if err != nil || rvas[name] == 0 {
		t.Fatalf("export %s: %v", name, err)
	}
	return rvas[name]
}
