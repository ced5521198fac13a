package triage

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kdtriage/kdtriage/kdump"
)

func TestParseBuildLab(t *testing.T) {
	cases := []struct {
		in         string
		build, rev uint32
		branch     string
		ok         bool
	}{
		{"19041.1.amd64fre.vb_release.191206-1406", 19041, 1, "vb_release", true},
		{"9600.18821.amd64fre.winblue_ltsb.170914-0600", 9600, 18821, "winblue_ltsb", true},
		{"22621.1.amd64fre.ni_release.220506-1250", 22621, 1, "ni_release", true},
		{"garbage", 0, 0, "", false},
		{"x.1.amd64fre.vb_release", 0, 0, "", false},
	}
	for _, c := range cases {
		b, r, br, ok := parseBuildLab(c.in)
		if b != c.build || r != c.rev || br != c.branch || ok != c.ok {
			t.Errorf("parseBuildLab(%q) = %d %d %q %v", c.in, b, r, br, ok)
		}
	}
}

func TestOSName(t *testing.T) {
	cases := []struct {
		build  uint32
		server bool
		want   string
	}{
		{7601, false, "Windows 7"}, {9600, false, "Windows 8.1"}, {19041, false, "Windows 10"},
		{22000, false, "Windows 11"}, {22621, false, "Windows 11"}, {26100, false, "Windows 11"},
		{17763, true, "Windows Server 2019"}, {20348, true, "Windows Server 2022"}, {9600, true, "Windows Server 2012 R2"},
	}
	for _, c := range cases {
		if got := osName(c.build, c.server); got != c.want {
			t.Errorf("osName(%d, %v) = %q, want %q", c.build, c.server, got, c.want)
		}
	}
	if ntVersion(9600) != "6.3" || ntVersion(22621) != "10.0" || ntVersion(7601) != "6.1" {
		t.Error("ntVersion")
	}
}

func TestAccessLetter(t *testing.T) {
	cases := []struct {
		p2    uint64
		build uint32
		want  string
	}{
		{0, 19041, "R"}, {2, 19041, "W"}, {0x10, 19041, "X"}, {0x11, 19041, "X"}, {1, 19041, "R"},
		{1, 9600, "W"}, {0, 9600, "R"}, {8, 9600, "X"},
	}
	for _, c := range cases {
		if got := accessLetter(c.p2, c.build); got != c.want {
			t.Errorf("accessLetter(%#x, %d) = %s, want %s", c.p2, c.build, got, c.want)
		}
	}
}

func TestModuleNames(t *testing.T) {
	cases := map[string]string{"ntoskrnl.exe": "nt", "NTKRNLMP.EXE": "nt", "hal.dll": "hal", "halmacpi.dll": "hal",
		"amdppm.sys": "amdppm", "Wdf01000.sys": "Wdf01000", "noext": "noext", "a.b.sys": "a.b"}
	for in, want := range cases {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
	nt := kdump.Module{Name: "ntoskrnl.exe"}
	if imageName(&nt, kdump.MachineAMD64, false) != "ntkrnlmp.exe" || imageName(&nt, kdump.MachineI386, true) != "ntkrpamp.exe" {
		t.Error("kernel image names")
	}
	if cleanName("SymELAM.sys\uffff") != "SymELAM.sys" {
		t.Error("cleanName keeps garbage")
	}
}

func TestHexJSON(t *testing.T) {
	b, err := json.Marshal(struct{ V Hex }{0xfffff8048b58334c})
	if err != nil || string(b) != `{"V":"0xfffff8048b58334c"}` {
		t.Fatalf("%s %v", b, err)
	}
	var v struct{ V Hex }
	if err := json.Unmarshal(b, &v); err != nil || v.V != 0xfffff8048b58334c {
		t.Fatalf("%x %v", v.V, err)
	}
	if err := json.Unmarshal([]byte(`{"V":"0xzz"}`), &v); err == nil {
		t.Error("bad hex accepted")
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	mk := func(file, bucket string, at time.Time) *Report {
		return &Report{FailureBucketID: bucket, FailureIDHash: FailureIDHash("km", bucket), Dump: DumpInfo{File: "/x/" + file, CrashTime: at}}
	}
	sums := Summarize([]*Report{
		mk("a.dmp", "B", t0), mk("b.dmp", "A", t0), mk("c.dmp", "B", t0.Add(time.Hour)), mk("d.dmp", "C", time.Time{}), mk("e.dmp", "B", t0.Add(-time.Hour)),
	})
	if len(sums) != 3 || sums[0].Bucket != "B" || sums[0].Count != 3 || sums[1].Bucket != "A" || sums[2].Bucket != "C" {
		t.Fatalf("%+v", sums)
	}
	if !sums[0].First.Equal(t0.Add(-time.Hour)) || !sums[0].Last.Equal(t0.Add(time.Hour)) {
		t.Errorf("first/last %v %v", sums[0].First, sums[0].Last)
	}
	if got := sums[0].Dumps; len(got) != 3 || got[0] != "a.dmp" || got[2] != "e.dmp" {
		t.Errorf("dumps %v", got)
	}
	um := mk("u.dmp", "NULL_POINTER_READ_c0000005_app.exe!Unknown", t0)
	um.Exception = &ExceptionReport{Code: 0xC0000005, Name: "EXCEPTION_ACCESS_VIOLATION"}
	if s := Summarize([]*Report{um}); s[0].BugCheck != "EXCEPTION_ACCESS_VIOLATION (0xc0000005)" {
		t.Errorf("user-mode summary names %q", s[0].BugCheck)
	}
}
