package rules

import (
	"fmt"
	"testing"
)

// benchSet is the embedded defaults plus a realistic user layer of 300 team
// owners, globs, known issues and version conditions.
func benchSet(b *testing.B) *Set {
	b.Helper()
	def, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	src := "owners:\n"
	for i := 0; i < 200; i++ {
		src += fmt.Sprintf("  drv%03d: Team_%d\n  drv%03d!Trace*: ignore\n", i, i%17, i)
	}
	src += "rules:\n"
	for i := 0; i < 100; i++ {
		src += fmt.Sprintf(`  - id: ki-%d
    when: {module: "vend%d*", function: "*Dispatch?", code: [0x7E, 0xD1], version: {max: "3.%d"}}
    then: {known_issue: KI-%d, tags: [t%d]}
`, i, i, i, i, i%7)
	}
	user, err := Parse("bench.yaml", []byte(src))
	if err != nil {
		b.Fatal(err)
	}
	return Merge(def, user)
}

func benchInput() Input {
	in := Input{Code: 0x1000007E, Kind: KindKernel, Machine: "x64", OSBuild: 19041,
		Frames: stack(
			"nt!KeBugCheckEx", "nt!KiBugCheckDispatch", "nt!KiPageFault", "drv042!TraceWrite",
			"vend7xyz!IrpDispatchR", "drv042!DoWork", "Wdf01000!FxIoQueue::DispatchEvents",
			"nt!IofCallDriver", "fltmgr!FltpDispatch", "nt!NtReadFile", "nt!KiSystemServiceCopyEnd",
			"unknown!Thing", "nt!ExpWorkerThread", "nt!PspSystemThreadStartup", "nt!KiStartSystemThread", "!",
		)}
	for i := 0; i < 150; i++ {
		in.Modules = append(in.Modules, Module{Name: fmt.Sprintf("drv%03d", i), Image: fmt.Sprintf("drv%03d.sys", i), Version: "1.0.0.0"})
	}
	in.Modules = append(in.Modules, Module{Name: "vend7xyz", Image: "vend7xyz.sys", Version: "3.1"})
	return in
}

// BenchmarkMatch measures whole-crash matching; frames/s is the throughput
// the issue asks for (>= 100,000).
func BenchmarkMatch(b *testing.B) {
	s := benchSet(b)
	in := benchInput()
	res := s.Match(in)
	if res.Blame != 4 || res.Actions.KnownIssue != "KI-7" {
		b.Fatalf("unexpected result: blame %d %+v", res.Blame, res.Actions)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Match(in)
	}
	b.ReportMetric(float64(b.N*len(in.Frames))/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkDecide measures the per-frame lookup alone.
func BenchmarkDecide(b *testing.B) {
	s := benchSet(b)
	in := benchInput()
	in.Modules = nil
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		for _, f := range in.Frames {
			s.Decide(&in, f)
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkLoadDefault measures compiling the embedded rules (what
// Default does once per process).
func BenchmarkLoadDefault(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := compileDefault(); err != nil {
			b.Fatal(err)
		}
	}
}
