package cab

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGcabWritten reads cabinets written by an independent implementation,
// gcab (Debian package gcab), with MSZIP compression.
func TestGcabWritten(t *testing.T) {
	gcab, err := exec.LookPath("gcab")
	if err != nil {
		t.Skip("gcab not installed (apt-get install gcab)")
	}
	dir := t.TempDir()
	files := map[string][]byte{
		"big.pdb":   repetitive(11, 300000),
		"small.dll": []byte("MZ small file"),
		"empty.txt": nil,
	}
	var args []string
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out := filepath.Join(dir, "out.cab")
	cmd := exec.Command(gcab, append([]string{"-c", "-z", "-n", out}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcab: %v\n%s", err, b)
	}
	r, err := OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.Files) != len(files) {
		t.Fatalf("%d files, want %d", len(r.Files), len(files))
	}
	for _, f := range r.Files {
		want, ok := files[f.Name]
		if !ok {
			t.Fatalf("unexpected member %q", f.Name)
		}
		if r.Folders[f.Folder].Compression != CompressMSZIP {
			t.Errorf("%s: compression %v", f.Name, r.Folders[f.Folder].Compression)
		}
		if got := readAll(t, f); !bytes.Equal(got, want) {
			t.Errorf("%s: contents differ (%d vs %d bytes)", f.Name, len(got), len(want))
		}
	}
}

// TestCorpusAgainstCabextract compares the unpacked basic32.pd_ with
// cabextract's output (Debian package cabextract).
func TestCorpusAgainstCabextract(t *testing.T) {
	src := filepath.Join(corpusDir(t), "symbols", "basic32.pd_")
	ce, err := exec.LookPath("cabextract")
	if err != nil {
		t.Skip("cabextract not installed (apt-get install cabextract)")
	}
	dir := t.TempDir()
	if b, err := exec.Command(ce, "-q", "-d", dir, src).CombinedOutput(); err != nil {
		t.Fatalf("cabextract: %v\n%s", err, b)
	}
	want, err := os.ReadFile(filepath.Join(dir, "basic32.pdb"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rc, err := r.Files[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	if got, w := h.Sum(nil), sha256.Sum256(want); !bytes.Equal(got, w[:]) {
		t.Fatalf("sha256 %x, cabextract gives %x", got, w)
	}
}
