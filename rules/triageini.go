package rules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// INIEntry is one owner line of a triage.ini file.
type INIEntry struct {
	Line    int    // 1-based line number
	Pattern string // module!function as written ("default" and "mod!default" kept)
	Owner   string // owner with spaces removed, as triage.ini does
	Comment string // comment lines directly above, without the comment markers
}

// ParseTriageINI reads a WinDbg triage.ini: lines "Module[!Function]=Owner",
// comments starting with ";" or "#", optional [section] headers (kept as
// comments). Spaces in owners are dropped, as the debugger does. Lines it
// cannot read are returned as errors with their line numbers; the rest is
// still returned.
func ParseTriageINI(name string, r io.Reader) ([]INIEntry, ErrorList) {
	var out []INIEntry
	var errs ErrorList
	var pending []string
	// Read one byte past the limit to tell a file of exactly MaxFileSize
	// bytes from a longer one, which is reported instead of being cut off
	// silently.
	lr := &io.LimitedReader{R: r, N: MaxFileSize + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4096), maxINILine)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(cleanText(strings.TrimPrefix(sc.Text(), "\uFEFF")))
		switch {
		case t == "":
			pending = append(pending, "")
			continue
		case strings.HasPrefix(t, ";") || strings.HasPrefix(t, "#"):
			pending = append(pending, strings.TrimSpace(t[1:]))
			continue
		case strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]"):
			pending = append(pending, "section "+t)
			continue
		}
		pat, owner, ok := strings.Cut(t, "=")
		pat = strings.TrimSpace(pat)
		if !ok || pat == "" {
			errs = append(errs, &Error{File: name, Line: line, Column: 1, Msg: fmt.Sprintf("not a Module[!Function]=Owner line: %q", t)})
			pending = nil
			continue
		}
		owner = strings.Join(strings.Fields(owner), "")
		if owner == "" {
			errs = append(errs, &Error{File: name, Line: line, Column: len(pat) + 2, Msg: fmt.Sprintf("%s has no owner", pat)})
			pending = nil
			continue
		}
		if st, o := parseOwner(owner); st != StrengthIgnore && o == "" {
			errs = append(errs, &Error{File: name, Line: line, Column: len(pat) + 2, Msg: fmt.Sprintf("owner %q has a prefix but no name", owner)})
			pending = nil
			continue
		}
		out = append(out, INIEntry{Line: line, Pattern: pat, Owner: owner, Comment: joinComment(pending)})
		pending = nil
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		errs = append(errs, &Error{File: name, Line: line + 1, Column: 1, Msg: fmt.Sprintf("line is longer than %d bytes; it and the rest of the file are not read", maxINILine)})
	case err != nil:
		errs = append(errs, &Error{File: name, Line: line + 1, Msg: "reading: " + err.Error()})
	case lr.N == 0:
		// The last line read may be cut short: drop what it gave.
		if n := len(out); n > 0 && out[n-1].Line == line {
			out = out[:n-1]
		}
		if n := len(errs); n > 0 && errs[n-1].Line == line {
			errs = errs[:n-1]
		}
		errs = append(errs, &Error{File: name, Line: line, Column: 1, Msg: fmt.Sprintf("file is more than the %d-byte limit for a rule file; line %d and the rest are not read", MaxFileSize, line)})
	}
	return out, errs
}

// maxINILine is the longest triage.ini line ParseTriageINI reads.
const maxINILine = 64 << 10

// cleanText makes a line safe to re-emit: invalid UTF-8 and control
// characters become U+FFFD.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) || r == 0xFEFF {
			return '\uFFFD'
		}
		return r
	}, s)
}

// joinComment drops leading and trailing blank lines of a comment block.
func joinComment(lines []string) string {
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n")
}

// ImportTriageINI converts a triage.ini to a rule file: every line that is
// valid in our frame-pattern syntax becomes an entry of the owners section
// (comments above it kept); a line with "*" inside a name (a literal "*" for
// the debugger) becomes a full rule with escaped globs; a pattern seen twice
// keeps its first owner and the repeat is recorded as a comment. The result
// parses with Parse.
func ImportTriageINI(name string, r io.Reader) ([]byte, ErrorList) {
	entries, errs := ParseTriageINI(name, r)
	owners := &yaml.Node{Kind: yaml.MappingNode}
	var ruleNodes []*yaml.Node
	seen := map[string]int{}
	var notes []string
	for _, e := range entries {
		key := strings.ToLower(e.Pattern)
		if fp, err := parseFramePattern(e.Pattern); err == nil {
			// nt, nt!* and nt!default are one pattern.
			key = patternKey(&fp.module) + "!" + patternKey(&fp.function)
		}
		if first, dup := seen[key]; dup {
			notes = append(notes, fmt.Sprintf("line %d: %s=%s repeats the pattern of line %d; the first owner is kept", e.Line, e.Pattern, e.Owner, first))
			continue
		}
		seen[key] = e.Line
		comment := e.Comment
		if _, err := parseFramePattern(e.Pattern); err != nil {
			rn, ok := literalStarRule(e)
			if !ok || !errors.Is(errors.Unwrap(err), errInnerStar) {
				errs = append(errs, &Error{File: name, Line: e.Line, Column: 1, Msg: fmt.Sprintf("cannot convert %q: %v", e.Pattern, err)})
				continue
			}
			ruleNodes = append(ruleNodes, rn)
			continue
		}
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: e.Pattern, HeadComment: commentText(comment)}
		v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: e.Owner, LineComment: fmt.Sprintf("# %s:%d", baseName(name), e.Line)}
		owners.Content = append(owners.Content, k, v)
	}
	doc := &yaml.Node{Kind: yaml.MappingNode}
	head := "Imported from " + baseName(name) + " by kdtriage rules import-triage-ini."
	if len(notes) > 0 {
		head += "\n" + strings.Join(notes, "\n")
	}
	doc.Content = append(doc.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Value: "version", HeadComment: commentText(head)},
		&yaml.Node{Kind: yaml.ScalarNode, Value: "1", Tag: "!!int"})
	if len(owners.Content) > 0 {
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "owners"}, owners)
	}
	if len(ruleNodes) > 0 {
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "rules"},
			&yaml.Node{Kind: yaml.SequenceNode, Content: ruleNodes})
	}
	out, err := encodeYAML(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}})
	if err != nil {
		errs = append(errs, &Error{File: name, Msg: "encoding YAML: " + err.Error()})
		return nil, errs
	}
	return out, errs
}

// encodeYAML encodes with two-space indentation, turning an encoder panic
// into an error.
func encodeYAML(n *yaml.Node) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%v", r)
		}
	}()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// literalStarRule turns a pattern with an inner "*" (a literal character
// for the debugger) into a rule with escaped module/function globs.
func literalStarRule(e INIEntry) (*yaml.Node, bool) {
	mod, fn, hasFn := strings.Cut(e.Pattern, "!")
	if mod == "" || (hasFn && fn == "") || strings.Contains(fn, "!") || strings.ContainsAny(e.Pattern, " \t") {
		return nil, false
	}
	esc := func(s string) string {
		body := strings.TrimSuffix(s, "*")
		trail := s[len(body):]
		body = strings.ReplaceAll(body, `\`, `\\`)
		body = strings.ReplaceAll(body, "?", `\?`)
		return strings.ReplaceAll(body, "*", `\*`) + trail
	}
	scalar := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	when := &yaml.Node{Kind: yaml.MappingNode}
	if !(mod == "*" || strings.EqualFold(mod, "default")) {
		when.Content = append(when.Content, scalar("module"), scalar(esc(mod)))
	}
	if hasFn && fn != "*" && !strings.EqualFold(fn, "default") {
		when.Content = append(when.Content, scalar("function"), scalar(esc(fn)))
	}
	if len(when.Content) == 0 {
		return nil, false
	}
	then := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{scalar("owner"), scalar(e.Owner)}}
	c := e.Comment
	if c != "" {
		c += "\n"
	}
	c += fmt.Sprintf("line %d: %q has a \"*\" inside a name, which the debugger reads literally", e.Line, e.Pattern)
	idNode := scalar("id")
	idNode.HeadComment = commentText(c)
	return &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		idNode, scalar(fmt.Sprintf("ini-line-%d", e.Line)),
		scalar("when"), when,
		scalar("then"), then,
	}}, true
}

// commentText turns lines into a YAML comment block ("" stays "").
func commentText(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l == "" {
			lines[i] = "#"
		} else {
			lines[i] = "# " + l
		}
	}
	return strings.Join(lines, "\n")
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
