package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize caps one rule file; larger files are rejected unread.
const MaxFileSize = 4 << 20

// maxListLen caps every list in a rule file (codes, tags, ...).
const maxListLen = 4096

// parser collects the rules and errors of one file.
type parser struct {
	file  string
	errs  ErrorList
	rules []*rule
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: p.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseFile parses one rule file. It never panics; hostile input gives
// errors.
func parseFile(name string, data []byte) (rs []*rule, errs ErrorList) {
	p := &parser{file: name}
	if len(data) > MaxFileSize {
		p.errorf(nil, "file is %d bytes, more than the %d-byte limit for a rule file", len(data), MaxFileSize)
		return nil, p.errs
	}
	var doc yaml.Node
	if err := safeUnmarshal(data, &doc); err != nil {
		msg := err.Error()
		e := &Error{File: name, Msg: msg}
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			// The YAML parser (unlike its scanner) reports the 0-based line
			// of the construct it was reading; make it 1-based.
			if strings.HasPrefix(m[2], "did not find expected") {
				e.Line++
			}
			e.Column = 1
			e.Msg = "YAML syntax: " + m[2]
		}
		return nil, ErrorList{e}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty file: no rules
	}
	p.document(doc.Content[0])
	return p.rules, p.errs
}

// errExtraDocument reports a second YAML document in a rule file.
type errExtraDocument struct{ line int }

func (e errExtraDocument) Error() string {
	return fmt.Sprintf("yaml: line %d: a rule file holds one YAML document; this \"---\" starts a second one, which would be ignored", e.line)
}

// safeUnmarshal decodes exactly one YAML document, turning a panic in the
// decoder into an error.
func safeUnmarshal(data []byte, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: decoder failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(n); err != nil {
		if errors.Is(err, io.EOF) {
			*n = yaml.Node{}
			return nil
		}
		return err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return err
	}
	return errExtraDocument{line: extra.Line}
}

// mapping walks a mapping node, checking for aliases, duplicate and unknown
// keys, and calls fn for each known key.
func (p *parser) mapping(n *yaml.Node, what string, known map[string]bool, fn func(key string, k, v *yaml.Node)) {
	if !p.plain(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping (key: value lines), not %s", what, kindName(n))
		return
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !p.plain(k) || !p.plain(v) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%s: keys must be plain words", what)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			p.errorf(k, "duplicate key %q in %s (first at line %d)", k.Value, what, prev.Line)
			continue
		}
		seen[k.Value] = k
		if known != nil && !known[k.Value] {
			p.errorf(k, "unknown key %q in %s; known keys: %s", k.Value, what, keyList(known))
			continue
		}
		fn(k.Value, k, v)
	}
}

// plain rejects anchors, aliases and merge keys: they make rule files hard
// to read and can expand without bound.
func (p *parser) plain(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		p.errorf(n, "YAML anchors and aliases are not supported in rule files; write the value out")
		return false
	}
	if n.Tag == "!!merge" {
		p.errorf(n, "YAML merge keys (<<) are not supported in rule files")
		return false
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the scalar %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "an empty document"
}

func keyList(m map[string]bool) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

var (
	topKeys  = set("version", "owners", "rules")
	ruleKeys = set("id", "description", "priority", "when", "then")
	whenKeys = set("frame", "module", "function", "image", "timestamp", "version", "scope",
		"code", "params", "machine", "kind", "os_build", "exception")
	thenKeys = set("owner", "ignore", "queue", "blame_image", "bucket", "bucket_suffix", "tags",
		"known_issue", "kb", "remediation", "severity")
	rangeKeys = set("min", "max")
	paramKeys = set("p1", "p2", "p3", "p4")
	maskKeys  = set("value", "mask")
)

func (p *parser) document(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	p.mapping(n, "a rule file", topKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			if ver, ok := p.uint(v, 32); ok && ver != 1 {
				p.errorf(v, "unsupported rule file version %d: this kdtriage reads version 1", ver)
			}
		case "owners":
			p.owners(v)
		case "rules":
			p.ruleList(v)
		}
	})
}

// owners reads the triage.ini-style section: "module!function: owner".
func (p *parser) owners(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	p.mapping(n, "owners", nil, func(key string, k, v *yaml.Node) {
		r := &rule{id: key, src: Source{File: p.file, Line: k.Line, Column: k.Column}, comment: k.HeadComment}
		fp, err := parseFramePattern(key)
		if err != nil {
			p.errorf(k, "bad frame pattern %q: %v", key, err)
			return
		}
		r.frame = &fp
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			p.errorf(v, "owner of %q must be a single word (a team, ignore, maybe_X or last_X)", key)
			return
		}
		if !p.setOwner(r, v) {
			return
		}
		if r.desc == "" {
			r.desc = strings.TrimSpace(strings.TrimPrefix(v.LineComment, "#"))
		}
		p.rules = append(p.rules, r)
	})
}

func (p *parser) ruleList(n *yaml.Node) {
	if !p.plain(n) {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "rules must be a list (lines starting with \"- \"), not %s", kindName(n))
		return
	}
	for _, item := range n.Content {
		p.rule(item)
	}
}

func (p *parser) rule(n *yaml.Node) {
	r := &rule{src: Source{File: p.file, Line: n.Line, Column: n.Column}, comment: n.HeadComment}
	nerr := len(p.errs)
	var hasWhen, hasThen bool
	var thenNode *yaml.Node
	p.mapping(n, "a rule", ruleKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "id":
			if s, ok := p.str(v); ok {
				if s == "" || strings.ContainsAny(s, " \t\r\n") {
					p.errorf(v, "rule id %q must be one non-empty word (letters, digits, - _ . : / !)", s)
				}
				r.id = s
			}
		case "description":
			r.desc, _ = p.str(v)
		case "priority":
			if v.Kind == yaml.ScalarNode {
				if pr, err := strconv.ParseInt(v.Value, 10, 32); err == nil && pr >= -1000 && pr <= 1000 {
					r.priority = int(pr)
					return
				}
			}
			p.errorf(v, "priority must be a whole number from -1000 to 1000")
		case "when":
			hasWhen = true
			p.when(r, v)
		case "then":
			hasThen = true
			thenNode = k
			p.then(r, v)
		}
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	if r.id == "" {
		p.errorf(n, "rule has no id: every rule needs a unique id (for example id: storage-nvme-timeout)")
	}
	if !hasThen {
		p.errorf(n, "rule %q has no then: section, so it would do nothing", r.id)
	} else if r.strength == StrengthNone && r.queue == "" && r.blameImage == "" && r.bucket == "" && r.suffix == "" &&
		len(r.tags) == 0 && r.knownIssue == "" && r.kb == "" && r.remediation == "" && r.severity == SeverityUnset &&
		len(p.errs) == nerr {
		p.errorf(thenNode, "rule %q: then: sets nothing", r.id)
	}
	_ = hasWhen
	if len(p.errs) != nerr {
		return
	}
	if !r.isFrameRule() {
		if r.strength == StrengthIgnore || r.strength == StrengthMaybe || r.strength == StrengthLast {
			p.errorf(thenNode, "rule %q: %s applies to frames, but the rule has no frame condition (frame, module, function, image, timestamp, version)", r.id, r.rawOwner)
		}
		if r.scopeSet {
			p.errorf(n, "rule %q: scope applies to frame rules only", r.id)
		}
	}
	if r.scopeSet && r.scope == scopeAny && r.strength != StrengthNone {
		p.errorf(thenNode, "rule %q: an owner is a verdict on one frame and cannot be combined with scope: any; split the rule", r.id)
	}
	if r.bucket != "" && r.suffix != "" {
		p.errorf(thenNode, "rule %q sets both bucket (replaces the whole bucket) and bucket_suffix; keep one", r.id)
	}
	if r.kind == KindUser && len(r.codes) > 0 {
		p.errorf(n, "rule %q can never match: user-mode dumps have no bug-check code", r.id)
	}
	if len(p.errs) == nerr {
		p.rules = append(p.rules, r)
	}
}

func (p *parser) when(r *rule, n *yaml.Node) {
	p.mapping(n, "when", whenKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "frame":
			s, ok := p.str(v)
			if !ok {
				return
			}
			fp, err := parseFramePattern(s)
			if err != nil {
				p.errorf(v, "bad frame pattern %q: %v", s, err)
				return
			}
			r.frame = &fp
		case "module", "function", "image":
			s, ok := p.str(v)
			if !ok {
				return
			}
			g, err := compileGlob(s)
			if err != nil {
				p.errorf(v, "bad %s glob %q: %v", key, s, err)
				return
			}
			switch key {
			case "module":
				r.module = &g
			case "function":
				r.function = &g
			default:
				r.image = &g
			}
		case "timestamp":
			r.timestamp = p.rangeOf(v, "timestamp", 32, true)
		case "os_build":
			r.osBuild = p.rangeOf(v, "os_build", 32, false)
		case "version":
			r.version = p.versionRange(v)
		case "scope":
			s, ok := p.str(v)
			if !ok {
				return
			}
			r.scopeSet = true
			switch s {
			case "blamed":
				r.scope = scopeBlamed
			case "any":
				r.scope = scopeAny
			default:
				p.errorf(v, "unknown scope %q: use blamed (the blamed frame) or any (any frame)", s)
			}
		case "code":
			for _, e := range p.list(v) {
				c, ok := p.uint(e, 32)
				if !ok {
					continue
				}
				if c == 0 {
					p.errorf(e, "0 is not a bug-check code")
					continue
				}
				r.codes = append(r.codes, NormalizeCode(uint32(c)))
			}
		case "exception":
			for _, e := range p.list(v) {
				if c, ok := p.uint(e, 32); ok {
					r.exceptions = append(r.exceptions, uint32(c))
				}
			}
		case "machine":
			for _, e := range p.list(v) {
				s, ok := p.str(e)
				if !ok {
					continue
				}
				m := normalizeMachine(s)
				if m != "x64" && m != "x86" && m != "arm64" && m != "arm" {
					p.errorf(e, "unknown machine %q: use x64, x86, arm64 or arm", s)
					continue
				}
				r.machines = append(r.machines, m)
			}
		case "kind":
			s, ok := p.str(v)
			if !ok {
				return
			}
			switch strings.ToLower(s) {
			case "kernel":
				r.kind = KindKernel
			case "user":
				r.kind = KindUser
			default:
				p.errorf(v, "unknown dump kind %q: use kernel or user", s)
			}
		case "params":
			p.mapping(v, "params", paramKeys, func(key string, k, v *yaml.Node) {
				i := int(key[1] - '1')
				items := []*yaml.Node{v}
				if v.Kind == yaml.SequenceNode {
					items = v.Content
					if len(items) == 0 || len(items) > maxListLen {
						p.errorf(v, "%s needs from 1 to %d values", key, maxListLen)
						return
					}
				}
				for _, e := range items {
					if pc, ok := p.param(e); ok {
						r.params[i] = append(r.params[i], pc)
					}
				}
			})
		}
	})
}

// param reads one accepted parameter value: a number, or {value, mask}.
func (p *parser) param(n *yaml.Node) (paramCond, bool) {
	if !p.plain(n) {
		return paramCond{}, false
	}
	if n.Kind == yaml.ScalarNode {
		v, ok := p.uint(n, 64)
		return paramCond{value: v, mask: ^uint64(0)}, ok
	}
	pc := paramCond{mask: ^uint64(0)}
	var hasValue, ok = false, true
	p.mapping(n, "a parameter condition", maskKeys, func(key string, k, v *yaml.Node) {
		x, good := p.uint(v, 64)
		if !good {
			ok = false
			return
		}
		if key == "value" {
			pc.value, hasValue = x, true
		} else {
			pc.mask = x
		}
	})
	if n.Kind != yaml.MappingNode || !ok {
		return pc, false
	}
	if !hasValue {
		p.errorf(n, "parameter condition needs a value")
		return pc, false
	}
	if pc.value&^pc.mask != 0 {
		p.errorf(n, "impossible parameter condition: value 0x%x has bits outside mask 0x%x", pc.value, pc.mask)
		return pc, false
	}
	return pc, true
}

// list returns the items of a sequence, or the node itself for a scalar.
func (p *parser) list(n *yaml.Node) []*yaml.Node {
	if !p.plain(n) {
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return []*yaml.Node{n}
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			p.errorf(n, "empty list: remove the key or give at least one value")
			return nil
		}
		if len(n.Content) > maxListLen {
			p.errorf(n, "list has %d items, more than %d", len(n.Content), maxListLen)
			return nil
		}
		out := make([]*yaml.Node, 0, len(n.Content))
		for _, c := range n.Content {
			if !p.plain(c) {
				continue
			}
			if c.Kind != yaml.ScalarNode {
				p.errorf(c, "list items must be single values, not %s", kindName(c))
				continue
			}
			out = append(out, c)
		}
		return out
	}
	p.errorf(n, "expected a value or a list of values, not %s", kindName(n))
	return nil
}

// str reads a scalar string.
func (p *parser) str(n *yaml.Node) (string, bool) {
	if !p.plain(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "expected a text value, not %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// uint reads an unsigned number: decimal, or hexadecimal with 0x.
func (p *parser) uint(n *yaml.Node, bits int) (uint64, bool) {
	if !p.plain(n) {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "expected a number, not %s", kindName(n))
		return 0, false
	}
	v, err := parseNumber(n.Value, bits)
	if err != nil {
		p.errorf(n, "%v", err)
		return 0, false
	}
	return v, true
}

// parseNumber parses decimal or 0x-prefixed hexadecimal (underscores
// allowed between digits).
func parseNumber(s string, bits int) (uint64, error) {
	t := strings.ReplaceAll(strings.TrimSpace(s), "_", "")
	var v uint64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(t), "0x"); ok {
		if h == "" {
			return 0, fmt.Errorf("bad hex number %q: no digits after 0x", s)
		}
		v, err = strconv.ParseUint(h, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("bad hex number %q", s)
		}
	} else {
		v, err = strconv.ParseUint(t, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad number %q: write decimal digits or 0x followed by hex digits", s)
		}
	}
	if bits < 64 && v>>uint(bits) != 0 {
		return 0, fmt.Errorf("number %s does not fit in %d bits", s, bits)
	}
	return v, nil
}

// rangeOf reads a number (exact) or {min, max}. Timestamps also accept
// dates (2006-01-02 or RFC 3339).
func (p *parser) rangeOf(n *yaml.Node, what string, bits int, dates bool) *u64Range {
	num := func(v *yaml.Node) (uint64, bool) {
		if dates && v.Kind == yaml.ScalarNode && strings.Count(v.Value, "-") >= 2 {
			t, err := time.Parse(time.DateOnly, v.Value)
			if err != nil {
				t, err = time.Parse(time.RFC3339, v.Value)
			}
			if err != nil || t.Unix() < 0 || t.Unix() > 0xFFFFFFFF {
				p.errorf(v, "bad %s date %q: use 2006-01-02, an RFC 3339 time or a number", what, v.Value)
				return 0, false
			}
			return uint64(t.Unix()), true
		}
		return p.uint(v, bits)
	}
	if n.Kind == yaml.ScalarNode {
		v, ok := num(n)
		if !ok {
			return nil
		}
		return &u64Range{v, v}
	}
	r := &u64Range{0, 1<<uint(bits) - 1}
	good := true
	p.mapping(n, what, rangeKeys, func(key string, k, v *yaml.Node) {
		x, ok := num(v)
		if !ok {
			good = false
			return
		}
		if key == "min" {
			r.min = x
		} else {
			r.max = x
		}
	})
	if n.Kind != yaml.MappingNode || !good {
		return nil
	}
	if r.min > r.max {
		p.errorf(n, "impossible %s range: min %d is greater than max %d", what, r.min, r.max)
		return nil
	}
	return r
}

func (p *parser) versionRange(n *yaml.Node) *versionRange {
	ver := func(v *yaml.Node) (version, bool) {
		s, ok := p.str(v)
		if !ok {
			return version{}, false
		}
		x, ok := parseVersion(s)
		if !ok {
			p.errorf(v, "bad version %q: use up to four dot-separated numbers (10.0.19041.1)", s)
		}
		return x, ok
	}
	if n.Kind == yaml.ScalarNode {
		v, ok := ver(n)
		if !ok {
			return nil
		}
		return &versionRange{v, v}
	}
	r := &versionRange{max: version{^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0)}}
	good := true
	p.mapping(n, "version", rangeKeys, func(key string, k, v *yaml.Node) {
		x, ok := ver(v)
		if !ok {
			good = false
			return
		}
		if key == "min" {
			r.min = x
		} else {
			r.max = x
		}
	})
	if n.Kind != yaml.MappingNode || !good {
		return nil
	}
	if r.max.less(r.min) {
		p.errorf(n, "impossible version range: min %s is greater than max %s", r.min, r.max)
		return nil
	}
	return r
}

var kbRE = regexp.MustCompile(`^KB[0-9]+$`)

func (p *parser) then(r *rule, n *yaml.Node) {
	var ignore *yaml.Node
	p.mapping(n, "then", thenKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "owner":
			p.setOwner(r, v)
		case "ignore":
			ignore = v
			if v.Kind != yaml.ScalarNode || (v.Value != "true" && v.Value != "false") {
				p.errorf(v, "ignore must be true or false")
				return
			}
			if v.Value == "true" {
				r.strength, r.rawOwner = StrengthIgnore, "ignore"
			}
		case "queue", "blame_image", "bucket", "bucket_suffix", "known_issue", "remediation":
			s, ok := p.str(v)
			if !ok {
				return
			}
			if strings.TrimSpace(s) == "" {
				p.errorf(v, "%s is empty", key)
				return
			}
			if key != "remediation" && strings.ContainsAny(s, " \t\r\n") {
				p.errorf(v, "%s %q must not contain white space", key, s)
				return
			}
			switch key {
			case "queue":
				r.queue = s
			case "blame_image":
				r.blameImage = s
			case "bucket":
				r.bucket = s
			case "bucket_suffix":
				r.suffix = s
			case "known_issue":
				r.knownIssue = s
			default:
				r.remediation = strings.TrimSpace(s)
			}
		case "kb":
			s, ok := p.str(v)
			if !ok {
				return
			}
			u, err := url.Parse(s)
			if !kbRE.MatchString(s) && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
				p.errorf(v, "kb %q must be an http(s) link or an article number like KB5001234", s)
				return
			}
			r.kb = s
		case "tags":
			for _, e := range p.list(v) {
				s, ok := p.str(e)
				if !ok {
					continue
				}
				if s == "" || strings.ContainsAny(s, " \t\r\n,") {
					p.errorf(e, "tag %q must be one non-empty word without commas", s)
					continue
				}
				r.tags = append(r.tags, s)
			}
		case "severity":
			s, ok := p.str(v)
			if !ok {
				return
			}
			sev, ok := ParseSeverity(s)
			if !ok {
				p.errorf(v, "unknown severity %q: use info, low, medium, high or critical", s)
				return
			}
			r.severity = sev
		}
	})
	if ignore != nil && r.rawOwner != "" && r.rawOwner != "ignore" {
		p.errorf(ignore, "rule sets both ignore and owner %q; keep one", r.rawOwner)
	}
}

// setOwner parses a triage.ini owner: a word, ignore, maybe_X or last_X.
func (p *parser) setOwner(r *rule, v *yaml.Node) bool {
	s, ok := p.str(v)
	if !ok {
		return false
	}
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		p.errorf(v, "owner %q must be one word without spaces (triage.ini owners have none)", s)
		return false
	}
	st, owner := parseOwner(s)
	if st != StrengthIgnore && owner == "" {
		p.errorf(v, "owner %q has a prefix but no name", s)
		return false
	}
	if r.rawOwner == "ignore" && st != StrengthIgnore {
		p.errorf(v, "rule sets both ignore and owner %q; keep one", s)
		return false
	}
	r.strength, r.owner, r.rawOwner = st, owner, s
	return true
}

// parseOwner splits a triage.ini owner into strength and name.
func parseOwner(s string) (Strength, string) {
	switch {
	case strings.EqualFold(s, "ignore"):
		return StrengthIgnore, ""
	case len(s) >= 6 && strings.EqualFold(s[:6], "maybe_"):
		return StrengthMaybe, s[6:]
	case len(s) >= 5 && strings.EqualFold(s[:5], "last_"):
		return StrengthLast, s[5:]
	}
	return StrengthDefinite, s
}
