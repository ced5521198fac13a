package triage

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

const userBanner = `*******************************************************************************
*                                                                             *
*                        Exception Analysis                                   *
*                                                                             *
*******************************************************************************
`

// writeUserText renders a user-mode report the way !analyze -v prints an
// application crash: the exception analysis banner, key values, the
// exception context (.ecxr), EXCEPTION_RECORD (.exr -1), PROCESS_NAME, the
// access address, ERROR_CODE and the EXCEPTION_* fields; from STACK_TEXT
// on the layout is the kernel report's (WriteText renders that part, so
// both stay the same).
func (r *Report) writeUserText(w io.Writer, opt TextOptions) error {
	tail := *r
	tail.Exception = nil
	var kb bytes.Buffer
	if err := tail.WriteText(&kb, opt); err != nil {
		return err
	}
	rest := kb.Bytes()
	if i := bytes.Index(rest, []byte("\nSTACK_TEXT:")); i >= 0 {
		rest = rest[i+1:]
	}
	bw := bufio.NewWriter(w)
	r.writeUserHead(bw, opt)
	bw.Write(rest)
	return bw.Flush()
}

func (r *Report) writeUserHead(bw *bufio.Writer, opt TextOptions) {
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	field := func(name, value string) {
		if value != "" {
			p("%s:  %s\n\n", name, value)
		}
	}
	wide := wideMachine(r.Dump.Machine)
	word := func(v Hex) string { return hexWord(v, wide) }
	addr := func(v Hex) string { return hexAddr(v, wide) }
	x := r.Exception

	p("%s\n\n", userBanner)
	p("KEY_VALUES_STRING: 1\n\n")
	kv := func(k, v string) {
		if v != "" {
			p("    Key  : %s\n    Value: %s\n\n", k, v)
		}
	}
	kv("Failure.Bucket", r.FailureBucketID)
	kv("Failure.Hash", r.FailureIDHash)
	if x.Name != "" || x.Code != 0 {
		kv("Failure.Exception.Code", "0x"+bare(x.Code))
	}
	if r.FaultingIP != nil {
		kv("Failure.Exception.IP.Address", "0x"+bare(r.FaultingIP.Address))
		kv("Failure.Exception.IP.Module", r.FaultingIP.Module)
		if r.FaultingIP.Offset != nil {
			kv("Failure.Exception.IP.Offset", "0x"+bare(*r.FaultingIP.Offset))
		}
	}
	kv("Failure.ProblemClass.Primary", x.Class)
	if x.Access != "" {
		kv("AV.Type", strings.ToUpper(x.Access[:1])+x.Access[1:])
		if x.Target != nil {
			kv("AV.Fault", "0x"+bare(*x.Target))
		}
	}
	kv("WER.OS.Branch", r.OS.Branch)
	kv("WER.OS.Version", r.OS.Version)
	p("\n")

	if r.Dump.File != "" {
		field("FILE_IN_CAB", baseName(r.Dump.File))
	}
	if opt.Legacy {
		field("DEFAULT_BUCKET_ID", "APPLICATION_FAULT")
	}
	if c := r.Context; c.Source == "exception_record" {
		p("CONTEXT:  (.ecxr)\n")
		writeRegs(bw, c.Regs, wide)
		p("Resetting default scope\n\n")
	}
	if x.Name != "" || x.Code != 0 || x.Address != 0 {
		p("EXCEPTION_RECORD:  (.exr -1)\n")
		where := ""
		if r.FaultingIP != nil && r.FaultingIP.Symbol != "" && r.FaultingIP.Address == x.Address {
			where = " (" + r.FaultingIP.Symbol + ")"
		}
		p("ExceptionAddress: %s%s\n", addr(x.Address), where)
		desc := x.Name
		if desc == "" {
			desc = "unknown"
		}
		p("   ExceptionCode: %08x (%s)\n", uint64(x.Code), desc)
		p("  ExceptionFlags: %08x\n", uint64(x.Flags))
		p("NumberParameters: %d\n", x.NumberParameters)
		for i, v := range x.Params {
			p("   Parameter[%d]: %s\n", i, word(v))
		}
		if x.Access != "" && x.Target != nil {
			verb := map[string]string{"read": "read from", "write": "write to", "execute": "execute non-executable memory at"}[x.Access]
			p("Attempt to %s address %s\n", verb, word(*x.Target))
		}
		if x.Detail != "" {
			p("Subcode: %s\n", x.Detail)
		}
		p("\n")
	}
	field("PROCESS_NAME", r.ProcessName)
	if x.Access != "" && x.Target != nil {
		name := map[string]string{"read": "READ_ADDRESS", "write": "WRITE_ADDRESS", "execute": "EXECUTE_ADDRESS"}[x.Access]
		field(name, word(*x.Target)+" ")
	}
	if x.Name != "" || x.Code != 0 {
		kind := "NTSTATUS"
		if x.Description == "" || !strings.HasPrefix(r.OS.Name, "Windows") {
			kind = "exception"
		}
		field("ERROR_CODE", fmt.Sprintf("(%s) 0x%08x - %s", kind, uint64(x.Code), x.Description))
		field("EXCEPTION_CODE_STR", fmt.Sprintf("%08x", uint64(x.Code)))
		for i, v := range x.Params {
			if i >= 4 {
				break
			}
			field(fmt.Sprintf("EXCEPTION_PARAMETER%d", i+1), word(v))
		}
		field("EXCEPTION_STR", x.Reason)
		field("FAILURE_EXCEPTION_DETAIL", x.Detail)
	} else {
		field("EXCEPTION_STR", "none ("+x.Description+")")
	}
	if opt.Legacy {
		field("PRIMARY_PROBLEM_CLASS", x.Class)
	}
}

// userRow fills the table columns of a user-mode report: the exception in
// place of the bug check.
func userRow(r *Report, row *Row) {
	x := r.Exception
	row.BugCheckString = x.Reason
	if row.BugCheckString == "" {
		row.BugCheckString = x.Class
	}
	row.BugCheckCode = fmt.Sprintf("0x%08x", uint64(x.Code))
	wide := wideMachine(r.Dump.Machine)
	row.Params = [4]string{}
	for i, v := range x.Params {
		if i >= 4 {
			break
		}
		row.Params[i] = hexWord(v, wide)
	}
}
