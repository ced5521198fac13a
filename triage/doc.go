// Package triage analyses crash dumps the way WinDbg's !analyze -v does and
// produces a Report: the bug check and its parameters, the faulting
// context and stack, the culprit (SYMBOL_NAME, MODULE_NAME, IMAGE_NAME) with
// a confidence and an explanation, FAILURE_BUCKET_ID in the modern grammar
// (and the legacy BUCKET_ID on request), a WinDbg-compatible
// FAILURE_ID_HASH, "Probably caused by" and the Followup owner from the
// rule files (package rules).
//
// # Analysis
//
// Analyze takes any kdump.Dump. Kernel dumps (*kdump.File) go through these
// steps:
//
//  1. Context: a context record, trap frame or exception record named by
//     the bug-check parameters (0x3B P3, 0x7E P4, 0x8E P3, 0x139 P2...) is
//     used when it is readable and plausible; otherwise the dump header's
//     context. STACK_COMMAND says which (.cxr ADDR ; kb, .trap ADDR ; kb,
//     .cxr; .ecxr ; kb).
//  2. Stack: frame 0 is the context's instruction pointer; the frames below
//     come from the stack walker (walk.go; until the unwinding walker is
//     wired in, a validated scan of the stack for return addresses into
//     loaded modules). Each frame says how it was found. When a parameter
//     holds the faulting instruction (0xA/0xD1 P4, 0x1E/0x3B/0x7E/0x8E P2,
//     0x50 P3, ...) and the context is not already at it, that instruction
//     is put on top as frame 0 (found by "ip_param").
//  3. Rules decide every frame (ignore, owner, maybe_, last_) and give the
//     crash-level actions (owner, bucket override or suffix, tags, known
//     issue, KB, remediation, severity, blame_image).
//  4. Culprit (analyze-semantics §1.5): the faulting instruction first; a
//     maybe_ owner there loses to a definite owner lower down; nt and hal
//     are blamed only as a last resort, with low confidence, and then the
//     first third-party frame is named beside them. An instruction in no
//     loaded module is said to be so (bucket ..._NO_MODULE_IP_Unknown_Image)
//     and one in an unloaded driver's range blames that driver
//     (..._UNLOADED_IMAGE_<name>). Objects are blamed for 0x116/0x117 (P2
//     points into the driver), 0x9F/3 (the driver holding the IRP),
//     0xEA/0xD8 (driver name), 0xEF/0xF4 (the process); 0x124 blames the
//     hardware (GenuineIntel/AuthenticAMD pseudo-image); 0xE2 and the other
//     manual crashes are not blamed on anything; 0x101 is inconclusive from
//     a small dump. Without a parameter, the top-most frame of the
//     strongest rule class is blamed.
//  5. Bucket, hash and the renderings.
//
// Every decision is written to Report.Why, so a reader sees which frame was
// blamed, which were passed over and which rule fired.
//
// User-mode (MDMP) dumps are analysed by the code in usermode*.go when it
// is present; Analyze dispatches on the dump's Format.
//
// # Output
//
// Report marshals to the versioned JSON layout of docs/report-schema.md
// (schema in docs/report.schema.json). WriteText renders the !analyze -v
// layout; WriteTable, WriteMarkdown and WriteCSV render one row per dump
// (BlueScreenView's columns plus the bucket); Summarize and WriteSummary
// count dumps per bucket.
package triage
