package rules

import (
	"strconv"
	"strings"
)

// u64Range is an inclusive range; a nil *u64Range is no condition.
type u64Range struct{ min, max uint64 }

func (r *u64Range) contains(v uint64) bool { return v >= r.min && v <= r.max }

// paramCond is one accepted value of a bug-check parameter: (P & mask) == value.
type paramCond struct{ value, mask uint64 }

// version is a dotted file version a.b.c.d.
type version [4]uint32

func (v version) less(w version) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}

func (v version) String() string {
	return strconv.FormatUint(uint64(v[0]), 10) + "." + strconv.FormatUint(uint64(v[1]), 10) + "." +
		strconv.FormatUint(uint64(v[2]), 10) + "." + strconv.FormatUint(uint64(v[3]), 10)
}

// parseVersion parses 1 to 4 dot-separated decimal numbers; missing parts
// are 0.
func parseVersion(s string) (version, bool) {
	var v version
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) == 0 || len(parts) > 4 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return v, false
		}
		v[i] = uint32(n)
	}
	return v, true
}

// versionRange is an inclusive range of versions.
type versionRange struct{ min, max version }

func (r *versionRange) contains(v version) bool { return !v.less(r.min) && !r.max.less(v) }

// scope says which frames a frame rule's crash-level actions look at.
type scope uint8

const (
	scopeBlamed scope = iota // the blamed frame only (default)
	scopeAny                 // any frame of the stack
)

// rule is one compiled rule. Rules are immutable after compilation.
type rule struct {
	id       string
	desc     string
	src      Source
	comment  string // comment above the rule, kept for import/export
	priority int

	// Frame conditions: all must hold for the same frame.
	frame     *framePattern
	module    *namePattern
	function  *namePattern
	image     *namePattern
	timestamp *u64Range
	version   *versionRange
	scope     scope
	scopeSet  bool

	// Crash conditions.
	codes      []uint32 // normalized (_M folded)
	params     [4][]paramCond
	machines   []string
	kind       Kind
	osBuild    *u64Range
	exceptions []uint32

	// Actions.
	strength    Strength // StrengthNone when the rule sets no owner
	owner       string   // without prefix
	rawOwner    string   // as written ("maybe_Team")
	queue       string
	blameImage  string
	bucket      string
	suffix      string
	tags        []string
	knownIssue  string
	kb          string
	remediation string
	severity    Severity

	// Precedence.
	spec  [4]int // module class, module literal length, function class, function literal length
	ncond int    // number of conditions
	order int    // position in load order within its layer
	rank  int    // position in the compiled set's precedence order
	canon string // canonical text for hashing
}

// isFrameRule reports whether the rule has conditions on a frame.
func (r *rule) isFrameRule() bool {
	return r.frame != nil || r.module != nil || r.function != nil || r.image != nil ||
		r.timestamp != nil || r.version != nil
}

// crashMatch reports whether the crash-level conditions hold.
func (r *rule) crashMatch(in *Input, code uint32, machine string) bool {
	if len(r.codes) > 0 {
		ok := false
		for _, c := range r.codes {
			if c == code {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for i := range r.params {
		if len(r.params[i]) == 0 {
			continue
		}
		ok := false
		for _, pc := range r.params[i] {
			if in.Params[i]&pc.mask == pc.value {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.machines) > 0 {
		ok := false
		for _, m := range r.machines {
			if m == machine {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if r.kind != KindAny && r.kind != in.Kind {
		return false
	}
	if r.osBuild != nil && !r.osBuild.contains(uint64(in.OSBuild)) {
		return false
	}
	if len(r.exceptions) > 0 {
		ok := false
		for _, e := range r.exceptions {
			if e == in.ExceptionCode {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// frameMatch reports whether the frame conditions hold for f. mod is the
// frame's module record (nil when unknown).
func (r *rule) frameMatch(f *Frame, mod *Module) bool {
	if f.Module == "" {
		return false // an address in no module has no owner to look up
	}
	if r.frame != nil && (!r.frame.module.match(f.Module) || !r.frame.function.match(f.Function)) {
		return false
	}
	if r.module != nil && !r.module.match(f.Module) {
		return false
	}
	if r.function != nil && !r.function.match(f.Function) {
		return false
	}
	if r.image != nil {
		img := f.Image
		if img == "" && mod != nil {
			img = mod.Image
		}
		if img == "" || !r.image.match(img) {
			return false
		}
	}
	if r.timestamp != nil && (mod == nil || mod.Timestamp == 0 || !r.timestamp.contains(uint64(mod.Timestamp))) {
		return false
	}
	if r.version != nil {
		if mod == nil {
			return false
		}
		v, ok := parseVersion(mod.Version)
		if !ok || !r.version.contains(v) {
			return false
		}
	}
	return true
}

// needsModule reports whether frameMatch needs the frame's module record.
func (r *rule) needsModule() bool {
	return r.image != nil || r.timestamp != nil || r.version != nil
}

// normalizeMachine maps machine aliases to x64, x86, arm64 and arm.
func normalizeMachine(m string) string {
	switch strings.ToLower(strings.TrimSpace(m)) {
	case "x64", "amd64", "x86_64", "x86-64":
		return "x64"
	case "x86", "i386", "i686", "386":
		return "x86"
	case "arm64", "aarch64":
		return "arm64"
	case "arm", "armnt", "arm32", "thumb":
		return "arm"
	}
	return strings.ToLower(m)
}
