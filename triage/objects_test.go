package triage

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/kdtriage/kdtriage/kdump"
)

// stackPatcher writes structures into the stack area of a real triage
// dump (the part of its memory that is stored in the file), so the
// object-following code paths run on a real module list and memory.
type stackPatcher struct {
	t    *testing.T
	b    []byte
	top  uint64 // VA of the first stored stack byte
	off  int64  // its file offset
	size uint64
}

func newStackPatcher(t *testing.T, path string) *stackPatcher {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := kdump.NewFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	th := f.Triage()
	return &stackPatcher{t: t, b: bytes.Clone(b), top: th.TopOfStack, off: int64(th.CallStackOffset), size: uint64(th.SizeOfCallStack)}
}

// va returns the VA of stack offset o (kept well below the stack's end).
func (p *stackPatcher) va(o uint64) uint64 {
	if o+0x600 > p.size {
		p.t.Fatalf("offset %#x outside the %#x-byte stack", o, p.size)
	}
	return p.top + o
}

func (p *stackPatcher) put(va uint64, data []byte) {
	copy(p.b[p.off+int64(va-p.top):], data)
}

func (p *stackPatcher) u64(va, v uint64) {
	var x [8]byte
	binary.LittleEndian.PutUint64(x[:], v)
	p.put(va, x[:])
}

// unicode writes a UNICODE_STRING at va whose text follows it.
func (p *stackPatcher) unicode(va uint64, s string) {
	u := utf16.Encode([]rune(s))
	buf := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(buf[2*i:], c)
	}
	hdr := make([]byte, 16)
	binary.LittleEndian.PutUint16(hdr[0:], uint16(len(buf)))
	binary.LittleEndian.PutUint16(hdr[2:], uint16(len(buf)))
	binary.LittleEndian.PutUint64(hdr[8:], va+16)
	p.put(va, hdr)
	p.put(va+16, buf)
}

func (p *stackPatcher) analyze(code uint32, params [4]uint64) *Report {
	p.t.Helper()
	b := bytes.Clone(p.b)
	binary.LittleEndian.PutUint32(b[0x38:], code)
	for i, v := range params {
		binary.LittleEndian.PutUint64(b[0x40+8*i:], v)
	}
	f, err := kdump.NewFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		p.t.Fatal(err)
	}
	rep, err := Analyze(context.Background(), f, Options{Rules: defaultRules(p.t)})
	if err != nil {
		p.t.Fatal(err)
	}
	checkComplete(p.t, rep)
	return rep
}

func TestObjectBlame(t *testing.T) {
	dir := corpusDir(t)
	p := newStackPatcher(t, filepath.Join(dir, "kernel", "win10-triage_x64.dmp"))
	f0, err := kdump.Open(filepath.Join(dir, "kernel", "win10-triage_x64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	mods, _ := f0.Modules()
	f0.Close()
	amd := *kdump.ModuleAt(mods, 0xfffff8048b58334c)

	// 0x9F/3: IRP -> current stack location -> device -> driver.
	irp, loc, dev, drv := p.va(0x100), p.va(0x300), p.va(0x400), p.va(0x500)
	p.u64(irp+0xB8, loc)
	p.u64(loc+0x28, dev)
	p.u64(dev+0x8, drv)
	p.u64(drv+0x18, amd.Base+0x1000)
	p.unicode(drv+0x38, `\Driver\AmdPPM`)
	// 0xEA/0xD8 style driver name.
	name := p.va(0x200)
	p.unicode(name, "atikmdag.sys")
	// 0xF4: the process image name as ASCII.
	proc := p.va(0x280)
	p.put(proc, []byte("csrss.exe\x00"))
	// 0x8E: a KTRAP_FRAME whose Rip is in amdppm and Rsp on the stack.
	tf := p.va(0x600)
	p.u64(tf+0x168, amd.Base+0x2000)
	p.u64(tf+0x180, p.va(0x900))
	// 0x3B: a CONTEXT record.
	cx := p.va(0xA00)
	p.u64(cx+0xF8, amd.Base+0x2100)
	p.u64(cx+0x78+8*4, p.va(0x1000))

	cases := []struct {
		name   string
		code   uint32
		params [4]uint64
		bucket string
		kind   CulpritKind
		image  string
		check  func(*Report) string
	}{
		{"9F irp", 0x9F, [4]uint64{3, 0, 0, irp}, "0x9F_3_AmdPPM_IMAGE_amdppm.sys", CulpritImage, "amdppm.sys", nil},
		{"EA name", 0xEA, [4]uint64{0, 0, name, 1}, "0xEA_IMAGE_atikmdag.sys", CulpritImage, "atikmdag.sys", nil},
		{"F4 process", 0xF4, [4]uint64{3, 0, proc, 0}, "0xF4_csrss.exe_BUGCHECK_CRITICAL_PROCESS_IMAGE_csrss.exe", CulpritProcess, "csrss.exe", nil},
		{"116 pointer", 0x117, [4]uint64{0, amd.Base + 0x5000, 0, 0}, "0x117_IMAGE_amdppm.sys", CulpritImage, "amdppm.sys", nil},
		{"8E trap frame", 0x8E, [4]uint64{0xC0000005, amd.Base + 0x2000, tf, 0}, "AV_amdppm!unknown_function", CulpritFrame, "amdppm.sys",
			func(r *Report) string {
				if r.Context.Source != "trap_frame" || !strings.HasPrefix(r.StackCommand, ".trap 0x") || r.Stack[0].FoundBy != "context" {
					return "trap frame not used: " + r.Context.Source + " " + r.StackCommand
				}
				return ""
			}},
		{"3B context", 0x3B, [4]uint64{0xC0000005, amd.Base + 0x2100, cx, 0}, "AV_amdppm!unknown_function", CulpritFrame, "amdppm.sys",
			func(r *Report) string {
				if r.Context.Source != "context_record" || uint64(r.Context.IP) != amd.Base+0x2100 {
					return "context record not used: " + r.Context.Source
				}
				return ""
			}},
		{"3B bad context", 0x3B, [4]uint64{0xC0000005, amd.Base + 0x2100, 0xdead0000, 0}, "AV_amdppm!unknown_function", CulpritFrame, "amdppm.sys",
			func(r *Report) string {
				if r.Context.Source != "dump_header" || len(r.Problems) == 0 {
					return "unreadable context record not reported"
				}
				return ""
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := p.analyze(c.code, c.params)
			if rep.FailureBucketID != c.bucket || rep.Culprit.Kind != c.kind || rep.Culprit.Image != c.image {
				t.Errorf("bucket %s kind %s image %s, want %s %s %s\nwhy: %s", rep.FailureBucketID, rep.Culprit.Kind, rep.Culprit.Image,
					c.bucket, c.kind, c.image, strings.Join(rep.Why, "\n"))
			}
			if c.check != nil {
				if msg := c.check(rep); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}
