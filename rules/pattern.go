package rules

import (
	"errors"
	"fmt"
	"strings"
)

// matchClass says how a compiled name pattern matches, most specific first
// in the numeric order used by precedence (higher is more specific).
type matchClass uint8

const (
	matchAny    matchClass = iota // "*": everything
	matchGlob                     // a general glob ("*foo?bar")
	matchPrefix                   // literal followed by a trailing "*"
	matchExact                    // a literal
)

// globElem is one element of a compiled glob.
type globElem struct {
	op byte // 'l' literal byte, '?' one byte, '*' any run
	b  byte // the lower-cased literal
}

// namePattern matches a name case-insensitively (ASCII folding). It is
// immutable once compiled.
type namePattern struct {
	class matchClass
	lit   string     // lower-cased literal for exact and prefix
	glob  []globElem // for matchGlob
	src   string     // the pattern as written
}

// literalLen is the number of literal bytes in the pattern, the tie-breaker
// of "longest match wins".
func (p *namePattern) literalLen() int {
	if p.class == matchGlob {
		n := 0
		for _, e := range p.glob {
			if e.op == 'l' {
				n++
			}
		}
		return n
	}
	return len(p.lit)
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether s starts with the lower-case prefix p,
// ignoring ASCII case in s.
func hasPrefixFold(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if lowerByte(s[i]) != p[i] {
			return false
		}
	}
	return true
}

// match reports whether name matches the pattern.
func (p *namePattern) match(name string) bool {
	switch p.class {
	case matchAny:
		return true
	case matchExact:
		return len(name) == len(p.lit) && hasPrefixFold(name, p.lit)
	case matchPrefix:
		return hasPrefixFold(name, p.lit)
	}
	return globMatch(p.glob, name)
}

// globMatch matches with single-star backtracking: linear in practice and
// never exponential.
func globMatch(g []globElem, s string) bool {
	gi, si := 0, 0
	starG, starS := -1, 0
	for si < len(s) {
		if gi < len(g) {
			e := g[gi]
			switch e.op {
			case '*':
				starG, starS = gi, si
				gi++
				continue
			case '?':
				gi++
				si++
				continue
			default:
				if lowerByte(s[si]) == e.b {
					gi++
					si++
					continue
				}
			}
		}
		if starG < 0 {
			return false
		}
		starS++
		si = starS
		gi = starG + 1
	}
	for gi < len(g) && g[gi].op == '*' {
		gi++
	}
	return gi == len(g)
}

var (
	errEmptyPattern   = errors.New("empty pattern")
	errTrailingEscape = errors.New(`pattern ends with an unfinished escape "\"`)
	errInnerStar      = errors.New(`"*" is allowed only as the last character (triage.ini syntax); use the module:/function: globs for other wildcards`)
)

// compileGlob compiles a glob: "*" matches any run of bytes, "?" one byte,
// "\" escapes the next byte. Matching ignores ASCII case.
func compileGlob(src string) (namePattern, error) {
	if src == "" {
		return namePattern{}, errEmptyPattern
	}
	var g []globElem
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case '\\':
			if i+1 >= len(src) {
				return namePattern{}, errTrailingEscape
			}
			i++
			g = append(g, globElem{op: 'l', b: lowerByte(src[i])})
		case '*':
			if len(g) > 0 && g[len(g)-1].op == '*' {
				continue // "**" is the same as "*"
			}
			g = append(g, globElem{op: '*'})
		case '?':
			g = append(g, globElem{op: '?'})
		default:
			g = append(g, globElem{op: 'l', b: lowerByte(c)})
		}
	}
	return classify(src, g), nil
}

// classify turns a parsed glob into the cheapest equivalent matcher.
func classify(src string, g []globElem) namePattern {
	p := namePattern{src: src}
	var lit strings.Builder
	for i, e := range g {
		switch {
		case e.op == 'l':
			lit.WriteByte(e.b)
		case e.op == '*' && i == len(g)-1:
			if i == 0 {
				p.class = matchAny
				return p
			}
			p.class = matchPrefix
			p.lit = lit.String()
			return p
		default:
			p.class = matchGlob
			p.glob = g
			return p
		}
	}
	p.class = matchExact
	p.lit = lit.String()
	return p
}

// compileTriageName compiles one side of a triage.ini pattern: a literal
// with an optional trailing "*"; "default" and "*" match everything.
func compileTriageName(src string) (namePattern, error) {
	if src == "" {
		return namePattern{}, errEmptyPattern
	}
	if strings.EqualFold(src, "default") || src == "*" {
		return namePattern{class: matchAny, src: src}, nil
	}
	body := strings.TrimSuffix(src, "*")
	if strings.Contains(body, "*") {
		return namePattern{}, errInnerStar
	}
	p := namePattern{src: src, lit: strings.ToLower(body), class: matchExact}
	if len(body) < len(src) {
		p.class = matchPrefix
	}
	return p, nil
}

// framePattern is a compiled triage.ini "module!function" pattern.
type framePattern struct {
	module   namePattern
	function namePattern
	src      string
}

// parseFramePattern parses "module", "module!function", "default" or
// "module!default" with triage.ini wildcards (a trailing "*" on either side).
func parseFramePattern(src string) (framePattern, error) {
	s := strings.TrimSpace(src)
	if s == "" {
		return framePattern{}, errors.New("empty frame pattern: write module!function, module or default")
	}
	if strings.ContainsAny(s, " \t") {
		return framePattern{}, errors.New("frame pattern contains white space")
	}
	mod, fn, hasFn := strings.Cut(s, "!")
	if hasFn && strings.Contains(fn, "!") {
		return framePattern{}, errors.New(`frame pattern has more than one "!"`)
	}
	fp := framePattern{src: s}
	var err error
	if strings.EqualFold(s, "default") {
		fp.module = namePattern{class: matchAny, src: "*"}
		fp.function = namePattern{class: matchAny, src: "*"}
		return fp, nil
	}
	if fp.module, err = compileTriageName(mod); err != nil {
		return framePattern{}, fmt.Errorf("module part: %w", err)
	}
	if !hasFn {
		fp.function = namePattern{class: matchAny, src: "*"}
		return fp, nil
	}
	if fp.function, err = compileTriageName(fn); err != nil {
		return framePattern{}, fmt.Errorf("function part: %w", err)
	}
	return fp, nil
}
