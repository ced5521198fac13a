package rules

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

//go:embed default/*.yaml
var defaultFS embed.FS

// Set is a compiled, immutable rule set. It is safe for concurrent use.
type Set struct {
	rules []*rule // in precedence order: rules[i].rank == i

	byModule   map[string][]*rule // owner frame rules whose module is a literal, by lower-case module
	wildOwners []*rule            // owner frame rules whose module is a pattern or absent
	frameOther []*rule            // frame rules without an owner (tags, known issues, ...)
	crash      []*rule            // rules without frame conditions
	needModule bool               // some frame rule needs the frame's module record
	hash       string
	files      []string
}

// Len returns the number of rules in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Files returns the files the set was loaded from, in load order.
func (s *Set) Files() []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s.files...)
}

// orEmpty lets every method treat a nil *Set as an empty set.
func (s *Set) orEmpty() *Set {
	if s == nil {
		return Merge()
	}
	return s
}

// Hash returns a stable identity of the rule set's behaviour: the hex
// SHA-256 of the canonical form of every rule in precedence order. Comments,
// descriptions, file names and line numbers do not change it; a change to any
// pattern, condition, action, priority, order or layer does.
func (s *Set) Hash() string { return s.orEmpty().hash }

// Parse parses and compiles one rule file's content. name is used in error
// messages and rule sources. The error, if any, is an ErrorList.
func Parse(name string, data []byte) (*Set, error) {
	rs, errs := parseFile(name, data)
	if errs = append(errs, checkLayer(rs)...); len(errs) > 0 {
		return nil, errs
	}
	return compile(rs, []string{name}), nil
}

// Load reads every *.yaml and *.yml file at the top of fsys, in lexical
// order, and compiles them into one layer. All problems of all files are
// reported together as an ErrorList.
func Load(fsys fs.FS) (*Set, error) {
	return loadFS(fsys, "")
}

// loadFS loads the top-level YAML files of fsys; prefix is prepended to
// file names in messages.
func loadFS(fsys fs.FS, prefix string) (*Set, error) {
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("rules: reading rule directory: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() || !isRuleFile(e.Name()) {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var all []*rule
	var errs ErrorList
	var files []string
	for _, n := range names {
		display := n
		if prefix != "" {
			display = path.Join(prefix, n)
		}
		data, err := readCapped(fsys, n)
		if err != nil {
			errs = append(errs, &Error{File: display, Msg: err.Error()})
			continue
		}
		rs, fe := parseFile(display, data)
		errs = append(errs, fe...)
		all = append(all, rs...)
		files = append(files, display)
	}
	errs = append(errs, checkLayer(all)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return compile(all, files), nil
}

func isRuleFile(name string) bool {
	return !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"))
}

func readCapped(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is more than the %d-byte limit for a rule file", MaxFileSize)
	}
	return data, nil
}

// LoadDir loads a directory of rule files (see Load), or a single file when
// dir names a file. Messages name files by their path.
func LoadDir(dir string) (*Set, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if !st.IsDir() {
		return LoadFiles(dir)
	}
	return loadFS(os.DirFS(dir), filepath.ToSlash(dir))
}

// LoadFiles loads the named files, in the order given, into one layer.
func LoadFiles(paths ...string) (*Set, error) {
	var all []*rule
	var errs ErrorList
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: err.Error()})
			continue
		}
		if st.Size() > MaxFileSize {
			errs = append(errs, &Error{File: p, Msg: fmt.Sprintf("file is %d bytes, more than the %d-byte limit for a rule file", st.Size(), MaxFileSize)})
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: err.Error()})
			continue
		}
		rs, fe := parseFile(p, data)
		errs = append(errs, fe...)
		all = append(all, rs...)
	}
	errs = append(errs, checkLayer(all)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return compile(all, paths), nil
}

// Default returns the embedded default rule set (rules/default/*.yaml): the
// kernel's bug-check, trap and exception plumbing that is never blamed,
// last-resort owners for nt and hal, a global MachineOwner default, and
// shipped knowledge such as the AMD display driver's custom bug check. Its
// files are named "default/<file>.yaml".
//
// The set is compiled once, on the first call; every call returns the same
// immutable *Set (safe for concurrent use; Merge copies its rules).
func Default() (*Set, error) { return defaultSet() }

// defaultSet compiles the embedded rules once. The embedded files never
// change, so the compiled set (or the error, which a test of this package
// would catch) is the same for the life of the process.
var defaultSet = sync.OnceValues(compileDefault)

// compileDefault compiles the embedded default rules.
func compileDefault() (*Set, error) {
	sub, err := fs.Sub(defaultFS, "default")
	if err != nil {
		return nil, err
	}
	return loadFS(sub, "default")
}

// checkLayer reports duplicate rule ids within one layer, and owner rules
// that can never take effect because an earlier rule of the same layer has
// the same pattern and conditions (nt, nt!* and nt!default are one
// pattern).
func checkLayer(rs []*rule) ErrorList {
	var errs ErrorList
	seen := make(map[string]*rule, len(rs))
	same := make(map[string]*rule, len(rs))
	for _, r := range rs {
		if r.id == "" {
			continue
		}
		if prev, ok := seen[r.id]; ok {
			errs = append(errs, &Error{File: r.src.File, Line: r.src.Line, Column: r.src.Column,
				Msg: fmt.Sprintf("duplicate rule id %q (first defined at %s)", r.id, prev.src)})
			continue
		}
		seen[r.id] = r
		if r.strength == StrengthNone || !r.isFrameRule() {
			continue
		}
		k := conditionKey(r)
		if prev, ok := same[k]; ok {
			errs = append(errs, &Error{File: r.src.File, Line: r.src.Line, Column: r.src.Column,
				Msg: fmt.Sprintf("rule %q can never take effect: rule %q at %s has the same pattern and conditions and comes first", r.id, prev.id, prev.src)})
			continue
		}
		same[k] = r
	}
	return errs
}

// patternKey is a normalised form of a name pattern.
func patternKey(p *namePattern) string {
	switch {
	case p == nil:
		return "-"
	case p.class == matchAny:
		return "*"
	case p.class == matchGlob:
		return "g:" + strings.ToLower(p.src)
	}
	return fmt.Sprintf("%d:%s", p.class, p.lit)
}

// conditionKey is a normalised form of everything that decides whether and
// how strongly a rule matches.
func conditionKey(r *rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pri=%d|", r.priority)
	if r.frame != nil {
		fmt.Fprintf(&b, "frame=%s!%s|", patternKey(&r.frame.module), patternKey(&r.frame.function))
	}
	fmt.Fprintf(&b, "m=%s|f=%s|i=%s|", patternKey(r.module), patternKey(r.function), patternKey(r.image))
	if r.timestamp != nil {
		fmt.Fprintf(&b, "ts=%d-%d|", r.timestamp.min, r.timestamp.max)
	}
	if r.version != nil {
		fmt.Fprintf(&b, "v=%s-%s|", r.version.min, r.version.max)
	}
	if r.osBuild != nil {
		fmt.Fprintf(&b, "os=%d-%d|", r.osBuild.min, r.osBuild.max)
	}
	codes := append([]uint32(nil), r.codes...)
	sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
	exc := append([]uint32(nil), r.exceptions...)
	sort.Slice(exc, func(i, j int) bool { return exc[i] < exc[j] })
	machines := append([]string(nil), r.machines...)
	sort.Strings(machines)
	fmt.Fprintf(&b, "c=%v|e=%v|mach=%v|k=%d|", codes, exc, machines, r.kind)
	for i, ps := range r.params {
		vs := make([]string, len(ps))
		for j, pc := range ps {
			vs[j] = fmt.Sprintf("%x/%x", pc.value, pc.mask)
		}
		sort.Strings(vs)
		fmt.Fprintf(&b, "p%d=%v|", i+1, vs)
	}
	return b.String()
}

// Merge combines sets into one. Later arguments are higher layers: on an
// otherwise equal precedence key a rule from a later set wins, so
// Merge(defaults, user) lets user files override the defaults. Nil sets are
// skipped.
func Merge(sets ...*Set) *Set {
	var all []*rule
	var files []string
	layer := 0
	for _, s := range sets {
		if s == nil {
			continue
		}
		// Rules keep their order within a set; layers stack.
		src := append([]*rule(nil), s.rules...)
		sort.SliceStable(src, func(i, j int) bool {
			if src[i].src.Layer != src[j].src.Layer {
				return src[i].src.Layer < src[j].src.Layer
			}
			return src[i].order < src[j].order
		})
		base := layer
		maxL := 0
		for _, r := range src {
			c := *r
			c.src.Layer = base + r.src.Layer
			if r.src.Layer > maxL {
				maxL = r.src.Layer
			}
			all = append(all, &c)
		}
		layer = base + maxL + 1
		files = append(files, s.files...)
	}
	return build(all, files)
}

// compile turns freshly parsed rules into a single-layer set.
func compile(rs []*rule, files []string) *Set {
	for i, r := range rs {
		r.order = i
		r.src.Layer = 0
	}
	return build(rs, files)
}

// build computes precedence, indexes and the hash. rs must carry order and
// layer.
func build(rs []*rule, files []string) *Set {
	for _, r := range rs {
		r.spec = specificity(r)
		r.ncond = countConditions(r)
		r.canon = canonical(r)
	}
	sort.SliceStable(rs, func(i, j int) bool { return before(rs[i], rs[j]) })
	s := &Set{rules: rs, byModule: map[string][]*rule{}, files: files}
	h := sha256.New()
	h.Write([]byte("kdtriage-rules/1\n"))
	for i, r := range rs {
		r.rank = i
		h.Write([]byte(r.canon))
		h.Write([]byte{'\n'})
		switch {
		case !r.isFrameRule():
			s.crash = append(s.crash, r)
		case r.strength == StrengthNone:
			s.frameOther = append(s.frameOther, r)
		case r.frame != nil && r.frame.module.class == matchExact:
			s.byModule[r.frame.module.lit] = append(s.byModule[r.frame.module.lit], r)
		case r.frame == nil && r.module != nil && r.module.class == matchExact:
			s.byModule[r.module.lit] = append(s.byModule[r.module.lit], r)
		default:
			s.wildOwners = append(s.wildOwners, r)
		}
		if r.isFrameRule() && r.needsModule() {
			s.needModule = true
		}
	}
	s.hash = hex.EncodeToString(h.Sum(nil))
	return s
}

// specificity computes the triage.ini "most complete match" key: the module
// side counts before the function side; on each side exact beats a prefix,
// a longer prefix beats a shorter one, and a pattern that matches everything
// ("*", "default") counts as no pattern.
func specificity(r *rule) [4]int {
	var k [4]int
	side := func(ps ...*namePattern) (int, int) {
		bc, bl := 0, 0
		for _, p := range ps {
			if p == nil {
				continue
			}
			c, l := int(p.class), p.literalLen()
			if c > bc || (c == bc && l > bl) {
				bc, bl = c, l
			}
		}
		return bc, bl
	}
	var fm, ff *namePattern
	if r.frame != nil {
		fm, ff = &r.frame.module, &r.frame.function
	}
	k[0], k[1] = side(fm, r.module, r.image)
	k[2], k[3] = side(ff, r.function)
	return k
}

// countConditions counts the conditions that narrow a rule: every
// condition except patterns that match everything.
func countConditions(r *rule) int {
	n := 0
	if r.frame != nil && (r.frame.module.class != matchAny || r.frame.function.class != matchAny) {
		n++
	}
	for _, p := range []*namePattern{r.module, r.function, r.image} {
		if p != nil && p.class != matchAny {
			n++
		}
	}
	if r.timestamp != nil {
		n++
	}
	if r.version != nil {
		n++
	}
	if len(r.codes) > 0 {
		n++
	}
	for _, ps := range r.params {
		if len(ps) > 0 {
			n++
		}
	}
	if len(r.machines) > 0 {
		n++
	}
	if r.kind != KindAny {
		n++
	}
	if r.osBuild != nil {
		n++
	}
	if len(r.exceptions) > 0 {
		n++
	}
	return n
}

// before is the precedence order: true when a beats b.
//
//  1. higher priority;
//  2. more specific frame pattern (module first, then function);
//  3. more conditions;
//  4. higher layer (user files over the embedded defaults);
//  5. earlier in load order (file name order, then position in the file).
func before(a, b *rule) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if a.spec != b.spec {
		for i := range a.spec {
			if a.spec[i] != b.spec[i] {
				return a.spec[i] > b.spec[i]
			}
		}
	}
	if a.ncond != b.ncond {
		return a.ncond > b.ncond
	}
	if a.src.Layer != b.src.Layer {
		return a.src.Layer > b.src.Layer
	}
	return a.order < b.order
}

// canonRule is the hashed form of a rule.
type canonRule struct {
	ID          string   `json:"id"`
	Priority    int      `json:"priority,omitempty"`
	Layer       int      `json:"layer,omitempty"`
	Frame       string   `json:"frame,omitempty"`
	Module      string   `json:"module,omitempty"`
	Function    string   `json:"function,omitempty"`
	Image       string   `json:"image,omitempty"`
	Timestamp   []uint64 `json:"timestamp,omitempty"`
	Version     []string `json:"version,omitempty"`
	Scope       uint8    `json:"scope,omitempty"`
	Codes       []uint32 `json:"codes,omitempty"`
	Params      []string `json:"params,omitempty"`
	Machines    []string `json:"machines,omitempty"`
	Kind        uint8    `json:"kind,omitempty"`
	OSBuild     []uint64 `json:"os_build,omitempty"`
	Exceptions  []uint32 `json:"exceptions,omitempty"`
	Owner       string   `json:"owner,omitempty"`
	Queue       string   `json:"queue,omitempty"`
	BlameImage  string   `json:"blame_image,omitempty"`
	Bucket      string   `json:"bucket,omitempty"`
	Suffix      string   `json:"bucket_suffix,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	KnownIssue  string   `json:"known_issue,omitempty"`
	KB          string   `json:"kb,omitempty"`
	Remediation string   `json:"remediation,omitempty"`
	Severity    uint8    `json:"severity,omitempty"`
}

func canonical(r *rule) string {
	c := canonRule{
		ID: r.id, Priority: r.priority, Layer: r.src.Layer, Scope: uint8(r.scope),
		Codes: r.codes, Machines: r.machines, Kind: uint8(r.kind), Exceptions: r.exceptions,
		Owner: r.rawOwner, Queue: r.queue, BlameImage: r.blameImage, Bucket: r.bucket, Suffix: r.suffix,
		Tags: r.tags, KnownIssue: r.knownIssue, KB: r.kb, Remediation: r.remediation, Severity: uint8(r.severity),
	}
	if r.frame != nil {
		c.Frame = r.frame.src
	}
	if r.module != nil {
		c.Module = r.module.src
	}
	if r.function != nil {
		c.Function = r.function.src
	}
	if r.image != nil {
		c.Image = r.image.src
	}
	if r.timestamp != nil {
		c.Timestamp = []uint64{r.timestamp.min, r.timestamp.max}
	}
	if r.version != nil {
		c.Version = []string{r.version.min.String(), r.version.max.String()}
	}
	if r.osBuild != nil {
		c.OSBuild = []uint64{r.osBuild.min, r.osBuild.max}
	}
	for i, ps := range r.params {
		for _, pc := range ps {
			c.Params = append(c.Params, fmt.Sprintf("p%d:%x/%x", i+1, pc.value, pc.mask))
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return r.id // cannot happen: only plain types
	}
	return string(b)
}
