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
// last-resort owner such as nt). Ignored frames are never blamed. Frames in no module match no
// frame pattern.
//
// Beyond triage.ini, frame conditions (frame, module, function and image
// globs, the module's timestamp and version) and crash conditions (bug-check
// code with _M variants folded, parameter values and masks, machine, dump
// kind, OS build range, exception code) can be combined in one rule; all of
// them must hold.
//
// # Precedence
//
// When several rules match, one order decides, for the owner of each frame
// and for every single-valued action:
//
//  1. higher priority (the explicit escape hatch, default 0);
//  2. more specific pattern: the module side first, then the function side
//     (exact, then longer prefix, then other globs; "*" counts as nothing),
//     so module2!functionB beats module2!funct* beats module2!* beats
//     mod*!functionB, as in triage.ini;
//  3. more conditions;
//  4. higher layer: user files (later Merge arguments) over the embedded
//     defaults;
//  5. load order: earlier file name, then earlier in the file.
//
// The order is total, so results are deterministic. Tags are the union of
// every fired rule's tags. A rule fires when its crash conditions hold and,
// for frame rules, it matches the blamed frame (or any frame with
// scope: any); the owner comes only from the blamed frame's winning rule or
// from crash-level rules.
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
