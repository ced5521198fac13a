package symbols

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump/minidump"
)

// TestMinidump2GroundTruth builds ModuleIDs from user/breakpad-minidump2.dmp's
// module list and checks that the Breakpad store in the corpus names the
// frames of groundtruth/minidump2.stackwalk.out exactly as Breakpad's
// minidump_stackwalk did: module, function, source file, line and offset.
// Callers' return addresses are looked up at eip-1, offsets measured from
// eip, as Breakpad does.
func TestMinidump2GroundTruth(t *testing.T) {
	sym := symCorpusDir(t)
	corpus := filepath.Dir(sym)
	dump, err := minidump.Open(filepath.Join(corpus, "user", "breakpad-minidump2.dmp"))
	if err != nil {
		t.Skipf("minidump2: %v", err)
	}
	mods, err := dump.Modules()
	if err != nil {
		t.Fatal(err)
	}
	var ids []ModuleID
	for _, m := range mods {
		id := ModuleID{Name: m.Name, Base: m.Base, Size: m.Size, TimeDateStamp: m.TimeDateStamp,
			DebugFile: m.DebugFile(), DebugID: m.DebugID(), CodeID: m.CodeID()}
		if cv := m.CodeView; cv != nil && cv.Signature == minidump.CVSignatureRSDS {
			id.PDBName, id.PDBAge = cv.PDBName, cv.Age
			id.PDBGUID = GUID{Data1: cv.GUID.Data1, Data2: cv.GUID.Data2, Data3: cv.GUID.Data3, Data4: cv.GUID.Data4}
		}
		ids = append(ids, id)
	}
	text, err1 := os.ReadFile(filepath.Join(corpus, "groundtruth", "minidump2.stackwalk.out"))
	machine, err2 := os.ReadFile(filepath.Join(corpus, "groundtruth", "minidump2.stackwalk.machine_readable.out"))
	if err1 != nil || err2 != nil {
		t.Skipf("ground truth missing: %v %v", err1, err2)
	}
	var eips []uint64
	for _, m := range regexp.MustCompile(`eip = 0x([0-9a-f]+)`).FindAllStringSubmatch(string(text), -1) {
		v, _ := strconv.ParseUint(m[1], 16, 64)
		eips = append(eips, v)
	}
	var frames [][]string
	for _, line := range strings.Split(string(machine), "\n") {
		if f := strings.Split(line, "|"); len(f) == 7 && f[0] == "0" {
			frames = append(frames, f)
		}
	}
	if len(frames) == 0 || len(frames) != len(eips) {
		t.Fatalf("%d frames, %d eips in the ground truth", len(frames), len(eips))
	}
	s := NewSymbolizer(SymbolizerOptions{Store: &testStore{root: filepath.Join(sym, "breakpad")}})
	for i, f := range frames {
		eip := eips[i]
		lookup := eip
		if i > 0 {
			lookup = eip - 1
		}
		mod, ok := FindModule(ids, lookup)
		if !ok {
			t.Errorf("frame %d: no module at %#x", i, lookup)
			continue
		}
		got, err := s.Symbolize(context.Background(), mod, lookup-mod.Base)
		if err != nil {
			t.Fatal(err)
		}
		off := got.Offset + eip - lookup
		if got.File != "" {
			off = got.LineOffset + eip - lookup
		}
		line := ""
		if got.Line != 0 {
			line = strconv.Itoa(int(got.Line))
		}
		gotRow := fmt.Sprintf("%s|%s|%s|%s|%#x", mod.FileName(), got.Function, got.File, line, off)
		wantRow := strings.Join(f[2:], "|")
		if gotRow != wantRow {
			t.Errorf("frame %d: got %s, want %s", i, gotRow, wantRow)
		}
	}
}
