package stack

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols/breakpad"
)

// breakpadCFI adapts Breakpad .sym files (package symbols/breakpad) to the
// CFI interface: STACK WIN FrameData records become ".program" rules,
// STACK CFI records their merged register rules.
type breakpadCFI map[string]*breakpad.File // by module name

func (b breakpadCFI) Rules(_ context.Context, m kdump.Module, rva uint32) (map[string]string, bool, error) {
	f := b[strings.ToLower(m.Name)]
	if f == nil {
		return nil, false, nil
	}
	if w, ok := f.FindWin(uint64(rva)); ok && w.HasProgram {
		return map[string]string{
			".program":     w.Program,
			".cbParams":    strconv.FormatUint(uint64(w.ParamSize), 10),
			".cbSavedRegs": strconv.FormatUint(uint64(w.SavedRegsSize), 10),
			".cbLocals":    strconv.FormatUint(uint64(w.LocalsSize), 10),
			".cbPrologue":  strconv.FormatUint(uint64(w.PrologSize), 10),
		}, true, nil
	}
	if c, ok := f.FindCFI(uint64(rva)); ok {
		return c.Merged(), true, nil
	}
	return nil, false, nil
}

// TestBreakpadMinidump2 walks Breakpad's own test dump (x86, Windows XP)
// with the Breakpad symbols of test_app and kernel32, and compares every
// frame's registers and "found by" with Breakpad's minidump_stackwalk
// output in the corpus ground truth.
func TestBreakpadMinidump2(t *testing.T) {
	d, err := kdump.OpenAny(corpusFile(t, "user/breakpad-minidump2.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	symDir := corpusFile(t, "symbols/breakpad")
	cfi := breakpadCFI{}
	for mod, sym := range map[string]string{"test_app.exe": "test_app.pdb/*/test_app.sym", "kernel32.dll": "kernel32.pdb/*/kernel32.sym"} {
		m, _ := filepath.Glob(filepath.Join(symDir, sym))
		if len(m) != 1 {
			t.Fatalf("%s: %v", sym, m)
		}
		f, err := breakpad.Open(m[0])
		if err != nil {
			t.Fatal(err)
		}
		cfi[mod] = f
	}
	mods, err := d.Modules()
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Context()
	if err != nil {
		t.Fatal(err)
	}
	frames, err := Walk(context.Background(), Input{Context: c, Memory: d.Memory(), Modules: mods, CFI: cfi})
	if err != nil {
		t.Fatal(err)
	}
	want := readStackwalk(t, corpusFile(t, "groundtruth/minidump2.stackwalk.out"))
	if len(frames) != len(want) {
		for _, f := range frames {
			t.Logf("%v eip %#x esp %#x ebp %#x", f, f.IP, f.SP, f.FP)
		}
		t.Fatalf("%d frames, minidump_stackwalk %d", len(frames), len(want))
	}
	for i, f := range frames {
		w := want[i]
		how := map[string]FoundBy{"given as instruction pointer in context": FoundByContext, "call frame info": FoundByCFI,
			"stack scanning": FoundByScan, "previous frame's frame pointer": FoundByFramePointer}[w.foundBy]
		if f.IP != w.regs["eip"] || f.SP != w.regs["esp"] || f.FP != w.regs["ebp"] || f.FoundBy != how {
			t.Errorf("frame %d: %v eip %#x esp %#x ebp %#x; minidump_stackwalk %v (%s)", i, f, f.IP, f.SP, f.FP, w.regs, w.foundBy)
		}
	}
}

type stackwalkFrame struct {
	regs    map[string]uint64
	foundBy string
}

var regRE = regexp.MustCompile(`([a-z]{2,3}) = (0x[0-9a-f]+)`)

// readStackwalk reads the crashed thread's frames from minidump_stackwalk
// text output.
func readStackwalk(t *testing.T, path string) []stackwalkFrame {
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []stackwalkFrame
	in := false
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasSuffix(line, "(crashed)"):
			in = true
		case !in:
		case line == "":
			if len(out) > 0 {
				return out
			}
		case regexp.MustCompile(`^\s*\d+\s`).MatchString(line):
			out = append(out, stackwalkFrame{regs: map[string]uint64{}})
		case strings.Contains(line, "Found by:"):
			out[len(out)-1].foundBy = strings.TrimSpace(strings.SplitN(line, "Found by:", 2)[1])
		case len(out) > 0:
			for _, m := range regRE.FindAllStringSubmatch(line, -1) {
				v, _ := strconv.ParseUint(m[2][2:], 16, 64)
				out[len(out)-1].regs[m[1]] = v
			}
		}
	}
	if len(out) == 0 {
		t.Fatal(fmt.Errorf("no frames in %s", path))
	}
	return out
}
