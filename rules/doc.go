// Package rules is the rule engine support engineers edit: YAML rule files
// that decide who owns a crash, which stack frames are never blamed, and what
// a bucket, its tags, known issue, KB link, remediation text and severity
// are. The semantics start from WinDbg's triage.ini and add conditions and
// actions triage.ini lacks. docs/rules.md is the user guide.
//
// # Files
//
// A rule directory holds *.yaml files, loaded in file-name order. A file has
// two optional sections:
//
//	version: 1
//	owners:                      # triage.ini lines, one per key
//	  nt!KeBugCheck*: ignore
//	  mydrv: Storage_Team
//	  Wdf01000: maybe_MachineOwner
//	rules:                       # full rules
//	  - id: nvme-timeout
//	    when: {frame: "stornvme!*", code: 0x9F, params: {p1: 3}}
//	    then: {owner: Storage_Team, tags: [storage], known_issue: KI-42}
//
// # triage.ini semantics
//
// A frame pattern is module!function, module alone, or default. A "*" is
// allowed only as the last character of either side; "default" and "*" match
// everything. Owners are one word. "ignore" takes the frame out of the
// running; maybe_X and last_X claim the frame for X with less strength. When
// picking the blamed frame (Result.Blame) the top-most frame of the strongest
// class wins: a definite owner anywhere beats a maybe_ owner higher up, a
// maybe_ owner beats a last_ owner. A frame no rule claims ranks between
// maybe_ and last_ (an unclaimed driver is a better answer than a
// last-resort owner such as nt); Strength.Rank gives the order. Ignored
// frames are never blamed. Frames in no module match no frame pattern.
//
// Beyond triage.ini, frame conditions (frame, module, function and image
// globs, the module's timestamp and version) and crash conditions (bug-check
// code with _M variants folded, parameter values and masks, machine, dump
// kind, OS build range, exception code) can be combined in one rule; all of
// them must hold.
//
// # Precedence
//
// When several rules match, one total order decides, for the owner of each
// frame and for every single-valued action: priority, pattern specificity,
// number of conditions, layer, load order. PrecedenceOrder returns the steps
// (kdtriage rules explain prints them); docs/rules.md explains each with
// examples. Tags are the union of every fired rule's tags.
//
// # Use
//
// Compile once, match many times; a Set is immutable and safe for
// concurrent use:
//
//	def, _ := rules.Default()
//	user, err := rules.LoadDir("/etc/kdtriage/rules")
//	set := rules.Merge(def, user)
//	res := set.Match(rules.Input{Code: 0xD1, Kind: rules.KindKernel, Frames: frames})
package rules
