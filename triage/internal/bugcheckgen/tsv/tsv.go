// Package tsv parses the shared bug-check code list.
package tsv

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Row is one code of the list.
type Row struct {
	Code     uint32
	Name     string
	BugCheck bool   // raised as a bug check
	LiveDump bool   // written as a kernel live dump
	Doc      string // documentation page, relative to the debugger docs
}

// Parse reads the TSV: comment lines start with '#', then
// code<TAB>name<TAB>kind<TAB>doc.
func Parse(data []byte) ([]Row, error) {
	var rows []Row
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	seen := map[uint32]bool{}
	for sc.Scan() {
		line++
		s := sc.Text()
		if s == "" || strings.HasPrefix(s, "#") || strings.HasPrefix(s, "code\t") {
			continue
		}
		f := strings.Split(s, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: %d columns, want 4", line, len(f))
		}
		code, err := strconv.ParseUint(strings.TrimPrefix(f[0], "0x"), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("line %d: code %q: %v", line, f[0], err)
		}
		if seen[uint32(code)] {
			return nil, fmt.Errorf("line %d: duplicate code %s", line, f[0])
		}
		seen[uint32(code)] = true
		var bug, live bool
		switch f[2] {
		case "bugcheck":
			bug = true
		case "livedump":
			live = true
		case "bugcheck+livedump":
			bug, live = true, true
		default:
			return nil, fmt.Errorf("line %d: unknown kind %q", line, f[2])
		}
		rows = append(rows, Row{Code: uint32(code), Name: f[1], BugCheck: bug, LiveDump: live, Doc: f[3]})
	}
	return rows, sc.Err()
}
