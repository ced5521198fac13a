package rules

import (
	"fmt"
	"strings"
)

// Error is one problem in a rule file, with its position.
type Error struct {
	File   string // file name as given to the loader
	Line   int    // 1-based line; 0 when the problem concerns the whole file
	Column int    // 1-based column; 0 when unknown
	Msg    string // what is wrong, in plain words
}

// Error formats the problem as file:line:column: message, the form editors
// and CI annotations understand.
func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ErrorList is every problem found while loading rule files, in file and
// line order. Load returns it (as error) when it is not empty.
type ErrorList []*Error

// Error joins the problems, one per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}
