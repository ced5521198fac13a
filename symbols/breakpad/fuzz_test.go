package breakpad

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse parses arbitrary input and runs every lookup on the result.
// Seeds: the sample above and the first lines of every corpus .sym file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("MODULE Linux x86_64 ID a\nSTACK CFI INIT 10 10 .cfa: $rsp 8 +\nSTACK CFI 12 .cfa: $rsp 16 +\n"))
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "symbols", "breakpad", "*", "*", "*.sym"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.SplitAfter(string(data), "\n")
		f.Add([]byte(strings.Join(lines[:min(len(lines), 300)], "")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		addrs := []uint64{0, 1, 0x1000, ^uint64(0)}
		for _, fn := range sf.Funcs {
			addrs = append(addrs, fn.Addr, fn.Addr+fn.Size/2)
		}
		for _, c := range sf.CFI {
			addrs = append(addrs, c.Addr+1)
		}
		for _, a := range addrs[:min(len(addrs), 64)] {
			sf.Lookup(a)
			if c, ok := sf.FindCFI(a); ok {
				c.Merged()
			}
			sf.FindWin(a)
		}
	})
}
