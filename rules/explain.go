package rules

import (
	"fmt"
	"strings"
)

// Candidate is one rule considered by Explain.
type Candidate struct {
	ID         string   // rule id
	Source     Source   // where the rule is defined
	When       string   // the rule's conditions, compactly
	Then       string   // the rule's actions, compactly
	Strength   Strength // claim strength of its owner (StrengthNone when it sets none)
	Owner      string   // owner without prefix
	Priority   int      // explicit priority
	Pattern    string   // specificity of the pattern in words ("module exact, function prefix (10)")
	Conditions int      // number of narrowing conditions
	Layer      int      // 0 embedded defaults, higher for user files
	Rank       int      // position in the set's precedence order (0 is first)
	Winner     bool     // this rule decided the frame
	Reason     string   // why it won, or why it lost to the winner, or what it still needs
}

// Explanation is the full story of how a set treats one frame of a crash:
// every rule that matches, which one won and why.
type Explanation struct {
	Frame      Frame         // the frame explained (module name canonicalised)
	Decision   FrameDecision // the verdict, as Match would give it
	Owners     []Candidate   // matching frame rules with an owner, precedence order; the first is the winner
	Others     []Candidate   // matching frame rules without an owner (tags, known issues...)
	Crash      []Candidate   // crash-level rules whose conditions hold
	NearMisses []Candidate   // frame rules whose frame conditions match but whose crash conditions do not
	Precedence []string      // the precedence order, spelled out
}

// precedenceOrder lists the steps that decide between matching rules, in
// order; it mirrors before() in set.go.
var precedenceOrder = []string{
	"1. higher priority",
	"2. more specific pattern: module side first (exact > longer prefix > glob > *), then function side",
	"3. more conditions",
	"4. higher layer: user rule files over the embedded defaults",
	"5. load order: earlier file name, then earlier in the file",
}

// PrecedenceOrder returns the precedence steps in words.
func PrecedenceOrder() []string { return append([]string(nil), precedenceOrder...) }

// Explain describes how the set treats frame f in the crash described by in
// (in.Frames is not looked at; the crash conditions use the other fields).
func (s *Set) Explain(in Input, f Frame) Explanation {
	s = s.orEmpty()
	f.Module = canonicalModule(f.Module)
	ctx := s.newCtx(&in)
	c := &ctx
	ex := Explanation{Frame: f, Precedence: PrecedenceOrder()}
	var winner *rule
	for _, r := range s.rules {
		if !r.isFrameRule() {
			if r.crashMatch(&in, c.code, c.machine) {
				ex.Crash = append(ex.Crash, s.candidate(r))
			}
			continue
		}
		var mod *Module
		if r.needsModule() {
			mod = c.module(&f)
		}
		if !r.frameMatch(&f, mod) {
			continue
		}
		cand := s.candidate(r)
		if !r.crashMatch(&in, c.code, c.machine) {
			cand.Reason = "frame matches, but the crash does not: needs " + r.describeCrash()
			ex.NearMisses = append(ex.NearMisses, cand)
			continue
		}
		if r.strength == StrengthNone {
			ex.Others = append(ex.Others, cand)
			continue
		}
		if winner == nil {
			winner = r
			cand.Winner = true
			cand.Reason = "wins: first in precedence order among the matching owner rules"
		} else {
			cand.Reason = "loses to " + winner.id + ": " + beatReason(winner, r)
		}
		ex.Owners = append(ex.Owners, cand)
	}
	ex.Decision = decision(winner)
	return ex
}

func (s *Set) candidate(r *rule) Candidate {
	return Candidate{
		ID: r.id, Source: r.src, When: r.describeWhen(), Then: r.describeThen(),
		Strength: r.strength, Owner: r.owner, Priority: r.priority, Pattern: describeSpec(r.spec),
		Conditions: r.ncond, Layer: r.src.Layer, Rank: r.rank,
	}
}

var classNames = [...]string{"any", "glob", "prefix", "exact"}

func describeSpec(k [4]int) string {
	side := func(c, l int) string {
		if c == 0 {
			return "any"
		}
		return fmt.Sprintf("%s (%d)", classNames[c], l)
	}
	return "module " + side(k[0], k[1]) + ", function " + side(k[2], k[3])
}

// beatReason says which precedence step makes w win over r.
func beatReason(w, r *rule) string {
	switch {
	case w.priority != r.priority:
		return fmt.Sprintf("step 1, priority %d > %d", w.priority, r.priority)
	case w.spec != r.spec:
		return fmt.Sprintf("step 2, pattern %s is more specific than %s", describeSpec(w.spec), describeSpec(r.spec))
	case w.ncond != r.ncond:
		return fmt.Sprintf("step 3, %d conditions > %d", w.ncond, r.ncond)
	case w.src.Layer != r.src.Layer:
		return fmt.Sprintf("step 4, layer %d (%s) over layer %d (%s)", w.src.Layer, w.src.File, r.src.Layer, r.src.File)
	}
	return fmt.Sprintf("step 5, %s comes before %s in load order", w.src, r.src)
}

// describeCrash renders only the crash conditions.
func (r *rule) describeCrash() string {
	c := *r
	c.frame, c.module, c.function, c.image, c.timestamp, c.version = nil, nil, nil, nil, nil, nil
	return c.describeWhen()
}

// String renders the explanation as text, the form `kdtriage rules explain`
// prints.
func (ex Explanation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "frame: %s\n", frameName(ex.Frame))
	switch {
	case ex.Decision.Rule == "":
		b.WriteString("decision: no owner rule matches; for blame the frame ranks below maybe_ owners and above last_ owners\n")
	case ex.Decision.Strength == StrengthIgnore:
		fmt.Fprintf(&b, "decision: ignore (never blamed), by %s at %s\n", ex.Decision.Rule, ex.Decision.Source)
	default:
		fmt.Fprintf(&b, "decision: %s owner %s, by %s at %s\n", ex.Decision.Strength, ex.Decision.Owner, ex.Decision.Rule, ex.Decision.Source)
	}
	section := func(title string, cs []Candidate) {
		if len(cs) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s:\n", title)
		for _, c := range cs {
			mark := " "
			if c.Winner {
				mark = "*"
			}
			fmt.Fprintf(&b, "%s %s  [%s]\n", mark, c.ID, c.Source)
			fmt.Fprintf(&b, "    when: %s\n    then: %s\n", c.When, c.Then)
			fmt.Fprintf(&b, "    priority %d, %s, %d conditions, layer %d\n", c.Priority, c.Pattern, c.Conditions, c.Layer)
			if c.Reason != "" {
				fmt.Fprintf(&b, "    %s\n", c.Reason)
			}
		}
	}
	section("owner rules matching this frame (precedence order, * = winner)", ex.Owners)
	section("other frame rules matching (their actions apply when this frame is blamed)", ex.Others)
	section("crash-level rules that fire for this crash", ex.Crash)
	section("rules that match the frame but not this crash", ex.NearMisses)
	b.WriteString("\nprecedence:\n")
	for _, p := range ex.Precedence {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	return b.String()
}

func frameName(f Frame) string {
	if f.Function == "" {
		return f.Module
	}
	return f.Module + "!" + f.Function
}
