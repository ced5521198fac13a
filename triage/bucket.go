package triage

import (
	"fmt"
	"strings"

	"github.com/kdtriage/kdtriage/kdump"
)

// Word forms of subtypes that !analyze puts in buckets (analyze-semantics
// §1.4), keyed by code and subtype value.
var subtypeWords = map[uint32]map[uint64]string{
	0x139: {0x3: "CORRUPT_LIST_ENTRY", 0x1D: "INVALID_BALANCED_TREE", 0x2: "STACK_COOKIE_CHECK", 0xA: "INVALID_CFG_TARGET"},
	0x133: {0x0: "DPC", 0x1: "DPC"},
}

// bugCheckStr returns the old BUGCHECK_STR: 0x<CODE>, the exception code
// for exception bug checks, and the subtype parameter in hex.
func bugCheckStr(bc kdump.BugCheck, info *BugCheckInfo) string {
	s := fmt.Sprintf("0x%X", info.Code)
	switch info.Code {
	case 0x1E, 0x3B, 0x7E, 0x8E:
		s += fmt.Sprintf("_%x", uint32(bc.Params[0]))
	}
	if info.SubcodeParam > 0 {
		s += fmt.Sprintf("_%x", bc.Params[info.SubcodeParam-1])
	}
	return s
}

// accessLetter returns R, W or X for the access-type parameter of 0x50.
func accessLetter(p2 uint64, build uint32) string {
	switch {
	case p2&0x10 != 0 || p2&0x8 != 0:
		return "X"
	case build >= 10240 && p2&0x2 != 0, build < 10240 && p2&0x1 != 0:
		return "W"
	}
	return "R"
}

// bucketPrefix returns the part of FAILURE_BUCKET_ID before the culprit:
// the class, its qualifiers and _VRF.
func (a *kernelAnalysis) bucketPrefix() []string {
	code := a.info.Code
	var parts []string
	switch code {
	case 0x0A, 0xD1:
		parts = append(parts, "AV")
	case 0x50:
		parts = append(parts, "AV", accessLetter(a.bc.Params[1], a.f.Header().MinorVersion))
		if a.rep.Culprit.Kind == CulpritFrame {
			parts = append(parts, "INVALID")
		}
	case 0x1E, 0x3B, 0x7E, 0x8E:
		exc := uint32(a.bc.Params[0])
		if exc == 0xC0000005 {
			parts = append(parts, "AV")
		} else {
			parts = append(parts, fmt.Sprintf("0x%X", code), fmt.Sprintf("%08X", exc))
		}
	default:
		parts = append(parts, fmt.Sprintf("0x%X", code))
		if n := a.info.SubcodeParam; n > 0 {
			v := a.bc.Params[n-1]
			parts = append(parts, fmt.Sprintf("%x", v))
			if w := subtypeWords[code][v]; w != "" {
				parts = append(parts, w)
			}
		}
	}
	switch a.rep.Culprit.Kind {
	case CulpritNoModule:
		parts = append(parts, "NO_MODULE_IP")
	case CulpritUnloaded:
		parts = append(parts, "UNLOADED")
	case CulpritProcess:
		parts = append(parts, a.rep.Culprit.Image, "BUGCHECK_CRITICAL_PROCESS")
	}
	if a.service != "" {
		parts = append(parts, a.service)
	}
	if a.rep.Verifier {
		parts = append(parts, "VRF")
	}
	return parts
}

// finishBucket builds FAILURE_BUCKET_ID, its hash, the legacy BUCKET_ID,
// BUCKET_ID_FUNC_OFFSET and "Probably caused by", after the culprit and
// the rules' actions are known.
func (a *kernelAnalysis) finishBucket() {
	rep := a.rep
	c := &rep.Culprit
	var bucket, legacyCulprit string
	switch c.Kind {
	case CulpritManual:
		bucket = "MANUALLY_INITIATED_CRASH"
		rep.ProbablyCausedBy = "ManualCrash"
	case CulpritNone:
		if a.info.Code == 0x101 {
			bucket = fmt.Sprintf("CLOCK_WATCHDOG_TIMEOUT_%x_PROC_ANALYSIS_INCONCLUSIVE", a.f.Header().NumberProcessors)
		} else {
			bucket = strings.Join(append(a.bucketPrefix(), "ANALYSIS_INCONCLUSIVE"), "_")
		}
		rep.ProbablyCausedBy = "Unknown_Image ( ANALYSIS_INCONCLUSIVE )"
	case CulpritHardware:
		if a.info.Code == 0x124 {
			bucket = strings.Join(append(a.bucketPrefix(), c.Module, "", "UNKNOWN", "IMAGE", c.Image), "_")
		} else {
			bucket = strings.Join(append(a.bucketPrefix(), "HARDWARE"), "_")
		}
		rep.ProbablyCausedBy = "hardware"
		legacyCulprit = "IMAGE_" + c.Image
	case CulpritNoModule:
		bucket = strings.Join(append(a.bucketPrefix(), "Unknown_Image"), "_")
		rep.ProbablyCausedBy = "Unknown_Image ( code outside every loaded module )"
		legacyCulprit = "Unknown_Image"
	case CulpritUnloaded:
		bucket = strings.Join(append(a.bucketPrefix(), "IMAGE_"+c.Image), "_")
		rep.ProbablyCausedBy = fmt.Sprintf("%s ( %s, unloaded )", c.Image, c.Symbol)
		legacyCulprit = c.Symbol
	case CulpritImage, CulpritProcess:
		bucket = strings.Join(append(a.bucketPrefix(), "IMAGE_"+c.Image), "_")
		rep.ProbablyCausedBy = c.Image
		legacyCulprit = "IMAGE_" + c.Image
		if c.Symbol != "" && !strings.HasPrefix(c.Symbol, "IMAGE_") && c.Symbol != c.Image {
			rep.ProbablyCausedBy = fmt.Sprintf("%s ( %s )", c.Image, c.Symbol)
		}
	case CulpritFrame:
		fr := &rep.Stack[c.Frame]
		fn := "unknown_function"
		off := ""
		switch {
		case fr.Function != "":
			fn = fr.Function
			if fr.FuncOffset != nil {
				off = fmt.Sprintf("%x", uint64(*fr.FuncOffset))
			}
			legacyCulprit = fmt.Sprintf("%s!%s+%s", fr.Module, fr.Function, off)
		case fr.Offset != nil:
			off = fmt.Sprintf("%x", uint64(*fr.Offset))
			legacyCulprit = fmt.Sprintf("%s+%s", fr.Module, off)
		}
		rep.BucketIDFuncOffset = off
		bucket = strings.Join(append(a.bucketPrefix(), fr.Module+"!"+fn), "_")
		rep.ProbablyCausedBy = fmt.Sprintf("%s ( %s )", c.Image, c.Symbol)
	}
	if o := rep.Rules.Override; o != "" {
		a.why("rule override replaces the bucket %s with %s", bucket, o)
		bucket = o
	}
	if s := rep.Rules.Suffix; s != "" {
		bucket += s
		a.why("a rule appends %s to the bucket", s)
	}
	rep.FailureBucketID = bucket
	rep.FailureIDHashString = FailureIDHashString(rep.AnalysisSource, bucket)
	rep.FailureIDHash = FailureIDHash(rep.AnalysisSource, bucket)
	if a.opts.LegacyBucket {
		rep.BucketID = a.legacyBucket(legacyCulprit)
	}
}

// legacyBucket returns the pre-2019 BUCKET_ID: architecture prefix,
// BUGCHECK_STR, _VRF and the culprit with its offset.
func (a *kernelAnalysis) legacyBucket(culprit string) string {
	rep := a.rep
	if rep.Rules.Override != "" {
		return strings.ToUpper(rep.OS.Platform) + "_" + rep.Rules.Override
	}
	parts := []string{strings.ToUpper(rep.OS.Platform), rep.BugCheck.BugCheckStr}
	if rep.Verifier {
		parts = append(parts, "VRF")
	}
	if rep.Culprit.Kind == CulpritManual || rep.Culprit.Kind == CulpritNone {
		return parts[0] + "_" + rep.FailureBucketID
	}
	return strings.Join(append(parts, culprit), "_") + rep.Rules.Suffix
}
