package triage

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriteRegsWidth(t *testing.T) {
	cases := []struct {
		name string
		regs map[string]Hex
		wide bool
		want string
	}{
		{"x86", map[string]Hex{"eax": 0x45, "ebx": 0x7c80abc1, "eip": 0x401000, "efl": 0x246},
			false, "eax=00000045 ebx=7c80abc1 eip=00401000\nefl=00000246\n"},
		{"x64", map[string]Hex{"rax": 1, "rip": 0xfffff8048b58334c},
			true, "rax=0000000000000001 rip=fffff8048b58334c\n"},
	}
	for _, c := range cases {
		var b bytes.Buffer
		writeRegs(&b, c.regs, c.wide)
		if b.String() != c.want {
			t.Errorf("%s: got %q, want %q", c.name, b.String(), c.want)
		}
	}
}

func TestHexFormats(t *testing.T) {
	for _, c := range []struct {
		machine    string
		word, addr string
		sym        string
	}{
		{"x64", "00000000828004d2", "00000000`828004d2", "0x00000000`828004d2"},
		{"arm64", "00000000828004d2", "00000000`828004d2", "0x00000000`828004d2"},
		{"x86", "828004d2", "828004d2", "0x828004d2"},
		{"arm", "828004d2", "828004d2", "0x828004d2"},
	} {
		wide := wideMachine(c.machine)
		v := Hex(0x828004d2)
		if got := hexWord(v, wide); got != c.word {
			t.Errorf("%s: hexWord %q, want %q", c.machine, got, c.word)
		}
		if got := hexAddr(v, wide); got != c.addr {
			t.Errorf("%s: hexAddr %q, want %q", c.machine, got, c.addr)
		}
		if got := windbgSymbol(Frame{IP: v}, wide); got != c.sym {
			t.Errorf("%s: frame without module %q, want %q", c.machine, got, c.sym)
		}
	}
	if got := windbgSymbol(Frame{IP: 1, Module: "nt", Symbol: "nt+0x1"}, true); got != "nt+0x1" {
		t.Errorf("frame in a module printed %q", got)
	}
}

// TestUserTextX86Registers: the user-mode text of an x86 dump prints the
// exception context with 8-digit registers.
func TestUserTextX86Registers(t *testing.T) {
	rep := &Report{Dump: DumpInfo{Machine: "x86"}, Exception: &ExceptionReport{Code: 0xC0000005, Name: "EXCEPTION_ACCESS_VIOLATION"},
		Context: ContextInfo{Source: "exception_record", Regs: map[string]Hex{"eax": 0x45, "eip": 0x401000}}}
	var b bytes.Buffer
	if err := rep.WriteText(&b, TextOptions{NoExtras: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "eax=00000045 eip=00401000\n") {
		t.Errorf("x86 registers not 8 digits wide:\n%s", b.String())
	}
}

func TestAccessAddress(t *testing.T) {
	cases := []struct {
		code  uint32
		p     [4]Hex
		build uint32
		name  string
		ok    bool
	}{
		{0xD1, [4]Hex{0x10, 2, 0, 0}, 19041, "READ_ADDRESS", true},
		{0xD1, [4]Hex{0x10, 2, 1, 0}, 19041, "WRITE_ADDRESS", true},
		{0xD1, [4]Hex{0x10, 2, 2, 0}, 19041, "EXECUTE_ADDRESS", true},
		{0xD1, [4]Hex{0x10, 2, 8, 0}, 19041, "EXECUTE_ADDRESS", true},
		{0x0A, [4]Hex{0x10, 2, 1, 0}, 19041, "WRITE_ADDRESS", true},
		{0x0A, [4]Hex{0x10, 2, 8, 0}, 19041, "EXECUTE_ADDRESS", true},
		{0x0A, [4]Hex{0x10, 2, 2, 0}, 19041, "READ_ADDRESS", true},
		{0x50, [4]Hex{0x10, 2, 0, 0}, 19041, "WRITE_ADDRESS", true},
		{0x50, [4]Hex{0x10, 1, 0, 0}, 9600, "WRITE_ADDRESS", true},
		{0x50, [4]Hex{0x10, 0x10, 0, 0}, 19041, "EXECUTE_ADDRESS", true},
		{0x50, [4]Hex{0x10, 0, 0, 0}, 19041, "READ_ADDRESS", true},
		{0x7E, [4]Hex{0xC0000005, 0x10, 0, 0}, 19041, "", false},
		{0x1000007E, [4]Hex{0xC0000005, 0x10, 0, 0}, 19041, "", false},
	}
	for _, c := range cases {
		r := &Report{BugCheck: BugCheckReport{Code: Hex(c.code), Params: c.p}, OS: OSInfo{Build: c.build}}
		name, v, ok := accessAddress(r)
		if name != c.name || ok != c.ok || (ok && v != c.p[0]) {
			t.Errorf("%#x %v build %d: %q %v %v, want %q %v", c.code, c.p, c.build, name, v, ok, c.name, c.ok)
		}
	}
}
