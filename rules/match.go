package rules

import (
	"fmt"
	"sort"
	"strings"
)

// matchCtx is the per-crash state of one Match call.
type matchCtx struct {
	in      *Input
	code    uint32
	machine string
	mods    map[string]*Module // lower-case module name -> record; nil until needed
}

func (s *Set) newCtx(in *Input) matchCtx {
	c := matchCtx{in: in, code: NormalizeCode(in.Code), machine: normalizeMachine(in.Machine)}
	if s.needModule && len(in.Modules) > 0 {
		c.mods = make(map[string]*Module, len(in.Modules))
		for i := range in.Modules {
			m := &in.Modules[i]
			k := strings.ToLower(m.Name)
			if _, dup := c.mods[k]; !dup {
				c.mods[k] = m
			}
		}
	}
	return c
}

// module returns the record of the frame's module, or nil.
func (c *matchCtx) module(f *Frame) *Module {
	if c.mods == nil || f.Module == "" {
		return nil
	}
	var buf [64]byte
	if len(f.Module) <= len(buf) {
		for i := 0; i < len(f.Module); i++ {
			buf[i] = lowerByte(f.Module[i])
		}
		return c.mods[string(buf[:len(f.Module)])]
	}
	return c.mods[strings.ToLower(f.Module)]
}

// matches reports whether r matches frame f of the crash.
func (c *matchCtx) matches(r *rule, f *Frame) bool {
	var mod *Module
	if r.needsModule() {
		mod = c.module(f)
	}
	return r.frameMatch(f, mod) && r.crashMatch(c.in, c.code, c.machine)
}

// firstMatch returns the first rule of list (in precedence order) that
// matches f, or nil.
func (c *matchCtx) firstMatch(list []*rule, f *Frame) *rule {
	for _, r := range list {
		if c.matches(r, f) {
			return r
		}
	}
	return nil
}

// ownerRules returns the owner frame rules indexed under f's module.
func (s *Set) ownerRules(f *Frame) []*rule {
	if len(s.byModule) == 0 || f.Module == "" {
		return nil
	}
	var buf [64]byte
	if len(f.Module) <= len(buf) {
		for i := 0; i < len(f.Module); i++ {
			buf[i] = lowerByte(f.Module[i])
		}
		return s.byModule[string(buf[:len(f.Module)])]
	}
	return s.byModule[strings.ToLower(f.Module)]
}

// decide returns the winning owner rule for frame f, or nil.
func (s *Set) decide(c *matchCtx, f *Frame) *rule {
	a := c.firstMatch(s.ownerRules(f), f)
	b := c.firstMatch(s.wildOwners, f)
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case b.rank < a.rank:
		return b
	}
	return a
}

// Decide returns the rules' verdict on a single frame of the crash described
// by in (in.Frames is not looked at). It allocates nothing unless the set
// has rules on module images, timestamps or versions and in.Modules is not
// empty.
func (s *Set) Decide(in *Input, f Frame) FrameDecision {
	if s == nil || in == nil {
		return FrameDecision{}
	}
	c := s.newCtx(in)
	f.Module = canonicalModule(f.Module)
	return decision(s.decide(&c, &f))
}

// canonicalModule maps the kernel and HAL image names a caller may pass for
// module names (ntoskrnl, ntkrnlmp, halmacpi, ...) to the debugger's module
// names nt and hal, which is what rules are written against.
func canonicalModule(name string) string {
	switch len(name) {
	case 8:
		if strings.EqualFold(name, "ntoskrnl") || strings.EqualFold(name, "ntkrnlmp") ||
			strings.EqualFold(name, "ntkrnlpa") || strings.EqualFold(name, "ntkrpamp") {
			return "nt"
		}
		if strings.EqualFold(name, "halmacpi") || strings.EqualFold(name, "halaacpi") {
			return "hal"
		}
	case 7:
		if strings.EqualFold(name, "halacpi") {
			return "hal"
		}
	}
	return name
}

// canonicalFrames returns in with canonical module names, copying the frame
// slice only when a name changes.
func canonicalFrames(in *Input) *Input {
	for i := range in.Frames {
		if canonicalModule(in.Frames[i].Module) != in.Frames[i].Module {
			cp := *in
			cp.Frames = make([]Frame, len(in.Frames))
			for j, f := range in.Frames {
				f.Module = canonicalModule(f.Module)
				cp.Frames[j] = f
			}
			return &cp
		}
	}
	return in
}

func decision(r *rule) FrameDecision {
	if r == nil {
		return FrameDecision{}
	}
	return FrameDecision{Strength: r.strength, Owner: r.owner, Rule: r.id, Source: r.src}
}

// Match applies the set to a crash: it decides every frame, picks the blamed
// frame as triage.ini does (the top-most frame of the strongest class:
// definite owner, then maybe_, then frames no rule owns, then last_; ignored
// frames never), and merges the actions of the rules that fire.
func (s *Set) Match(in Input) Result {
	return s.orEmpty().match(&in, -2)
}

// MatchBlamed is Match with the blamed frame chosen by the caller (for
// example the frame of the IP parameter, or -1 when the blame is an object
// rather than a frame). Frame decisions are computed as in Match; frame rules'
// actions apply to the caller's frame.
func (s *Set) MatchBlamed(in Input, blamed int) Result {
	if blamed < -1 || blamed >= len(in.Frames) {
		blamed = -1
	}
	return s.orEmpty().match(&in, blamed)
}

func (s *Set) match(orig *Input, blamed int) Result {
	in := canonicalFrames(orig)
	ctx := s.newCtx(in)
	c := &ctx
	res := Result{Frames: make([]FrameDecision, len(in.Frames)), Blame: -1}
	winners := make([]*rule, len(in.Frames))
	best := -1
	for i := range in.Frames {
		r := s.decide(c, &in.Frames[i])
		winners[i] = r
		res.Frames[i] = decision(r)
		if rk := res.Frames[i].Strength.Rank(); rk > 0 && rk > best {
			best, res.Blame = rk, i
		}
	}
	if blamed != -2 {
		res.Blame = blamed
	}

	// Collect the rules whose actions apply.
	var fired []*rule
	var firedFrame []int
	seen := make(map[*rule]bool)
	add := func(r *rule, frame int) {
		if r != nil && !seen[r] {
			seen[r] = true
			fired = append(fired, r)
			firedFrame = append(firedFrame, frame)
		}
	}
	if res.Blame >= 0 {
		if w := winners[res.Blame]; w != nil && w.strength != StrengthIgnore {
			add(w, res.Blame)
		}
	}
	for _, r := range s.crash {
		if r.crashMatch(in, c.code, c.machine) {
			add(r, -1)
		}
	}
	for _, r := range s.frameOther {
		switch {
		case r.scope == scopeAny:
			for i := range in.Frames {
				if c.matches(r, &in.Frames[i]) {
					add(r, i)
					break
				}
			}
		case res.Blame >= 0:
			if c.matches(r, &in.Frames[res.Blame]) {
				add(r, res.Blame)
			}
		}
	}
	idx := make([]int, len(fired))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return fired[idx[a]].rank < fired[idx[b]].rank })
	tags := map[string]bool{}
	act := &res.Actions
	for _, i := range idx {
		r := fired[i]
		res.Fired = append(res.Fired, Hit{ID: r.id, Source: r.src, Frame: firedFrame[i], Why: why(r, in, firedFrame[i])})
		if act.Owner == "" && r.owner != "" && r.strength != StrengthIgnore {
			act.Owner = r.owner
		}
		setIf(&act.Queue, r.queue)
		setIf(&act.BlameImage, r.blameImage)
		setIf(&act.Bucket, r.bucket)
		setIf(&act.BucketSuffix, r.suffix)
		setIf(&act.KnownIssue, r.knownIssue)
		setIf(&act.KB, r.kb)
		setIf(&act.Remediation, r.remediation)
		if act.Severity == SeverityUnset {
			act.Severity = r.severity
		}
		for _, t := range r.tags {
			tags[t] = true
		}
	}
	for t := range tags {
		act.Tags = append(act.Tags, t)
	}
	sort.Strings(act.Tags)
	return res
}

func setIf(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// why describes in one line what a fired rule matched and set.
func why(r *rule, in *Input, frame int) string {
	var b strings.Builder
	if frame >= 0 && frame < len(in.Frames) {
		fmt.Fprintf(&b, "frame %d %s matched %s", frame, in.Frames[frame], r.describeWhen())
	} else {
		fmt.Fprintf(&b, "crash matched %s", r.describeWhen())
	}
	b.WriteString(": ")
	b.WriteString(r.describeThen())
	return b.String()
}

// describeWhen renders the rule's conditions compactly.
func (r *rule) describeWhen() string {
	var parts []string
	if r.frame != nil {
		parts = append(parts, r.frame.src)
	}
	if r.module != nil {
		parts = append(parts, "module="+r.module.src)
	}
	if r.function != nil {
		parts = append(parts, "function="+r.function.src)
	}
	if r.image != nil {
		parts = append(parts, "image="+r.image.src)
	}
	if r.timestamp != nil {
		parts = append(parts, fmt.Sprintf("timestamp=0x%x..0x%x", r.timestamp.min, r.timestamp.max))
	}
	if r.version != nil {
		parts = append(parts, fmt.Sprintf("version=%s..%s", r.version.min, r.version.max))
	}
	if len(r.codes) > 0 {
		cs := make([]string, len(r.codes))
		for i, c := range r.codes {
			cs[i] = fmt.Sprintf("0x%X", c)
		}
		parts = append(parts, "code="+strings.Join(cs, "|"))
	}
	for i, ps := range r.params {
		if len(ps) == 0 {
			continue
		}
		vs := make([]string, len(ps))
		for j, pc := range ps {
			if pc.mask == ^uint64(0) {
				vs[j] = fmt.Sprintf("0x%x", pc.value)
			} else {
				vs[j] = fmt.Sprintf("0x%x/0x%x", pc.value, pc.mask)
			}
		}
		parts = append(parts, fmt.Sprintf("p%d=%s", i+1, strings.Join(vs, "|")))
	}
	if len(r.machines) > 0 {
		parts = append(parts, "machine="+strings.Join(r.machines, "|"))
	}
	if r.kind != KindAny {
		parts = append(parts, "kind="+r.kind.String())
	}
	if r.osBuild != nil {
		parts = append(parts, fmt.Sprintf("os_build=%d..%d", r.osBuild.min, r.osBuild.max))
	}
	if len(r.exceptions) > 0 {
		es := make([]string, len(r.exceptions))
		for i, e := range r.exceptions {
			es[i] = fmt.Sprintf("0x%X", e)
		}
		parts = append(parts, "exception="+strings.Join(es, "|"))
	}
	if len(parts) == 0 {
		return "every crash"
	}
	return strings.Join(parts, " ")
}

// describeThen renders the rule's actions compactly.
func (r *rule) describeThen() string {
	var parts []string
	if r.rawOwner != "" {
		parts = append(parts, "owner="+r.rawOwner)
	}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("queue", r.queue)
	add("blame_image", r.blameImage)
	add("bucket", r.bucket)
	add("bucket_suffix", r.suffix)
	if len(r.tags) > 0 {
		parts = append(parts, "tags="+strings.Join(r.tags, ","))
	}
	add("known_issue", r.knownIssue)
	add("kb", r.kb)
	if r.remediation != "" {
		parts = append(parts, "remediation")
	}
	add("severity", r.severity.String())
	return strings.Join(parts, " ")
}
