package stack

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kdtriage/kdtriage/kdump"
)

// Breakpad register names per machine, in kdump.Context.GPR numbering.
var (
	regNamesX64 = map[string]int{"$rax": 0, "$rcx": 1, "$rdx": 2, "$rbx": 3, "$rsp": 4, "$rbp": 5, "$rsi": 6, "$rdi": 7,
		"$r8": 8, "$r9": 9, "$r10": 10, "$r11": 11, "$r12": 12, "$r13": 13, "$r14": 14, "$r15": 15}
	regNamesX86 = map[string]int{"$eax": 0, "$ecx": 1, "$edx": 2, "$ebx": 3, "$esp": 4, "$ebp": 5, "$esi": 6, "$edi": 7}
)

func (w *walker) pcName() string {
	switch w.machine {
	case kdump.MachineAMD64:
		return "$rip"
	case kdump.MachineI386:
		return "$eip"
	}
	return "pc"
}

// maxPostfixTokens bounds the work of one expression.
const maxPostfixTokens = 256

// evaluator evaluates Breakpad postfix expressions and STACK WIN programs.
type evaluator struct {
	vars  map[string]uint64
	mem   kdump.Memory
	ptr   int
	stack []uint64
}

// eval evaluates an expression and returns its single result.
func (e *evaluator) eval(expr string) (uint64, error) {
	e.stack = e.stack[:0]
	if err := e.run(expr, false); err != nil {
		return 0, err
	}
	if len(e.stack) != 1 {
		return 0, fmt.Errorf("expression %q leaves %d values", expr, len(e.stack))
	}
	return e.stack[0], nil
}

// run executes tokens; with assign, "VAR value =" stores into vars.
func (e *evaluator) run(expr string, assign bool) error {
	toks := strings.Fields(expr)
	if len(toks) > maxPostfixTokens {
		return fmt.Errorf("expression of %d tokens", len(toks))
	}
	var names []string // pending assignment targets, parallel to stack
	pop := func() (uint64, error) {
		if len(e.stack) == 0 {
			return 0, fmt.Errorf("stack underflow in %q", expr)
		}
		v := e.stack[len(e.stack)-1]
		e.stack = e.stack[:len(e.stack)-1]
		if len(names) > 0 {
			names = names[:len(names)-1]
		}
		return v, nil
	}
	push := func(v uint64, name string) {
		e.stack = append(e.stack, v)
		names = append(names, name)
	}
	for _, t := range toks {
		switch t {
		case "+", "-", "*", "/", "%", "@":
			b, err := pop()
			if err != nil {
				return err
			}
			a, err := pop()
			if err != nil {
				return err
			}
			var r uint64
			switch t {
			case "+":
				r = a + b
			case "-":
				r = a - b
			case "*":
				r = a * b
			case "/":
				if b == 0 {
					return fmt.Errorf("division by zero in %q", expr)
				}
				r = a / b
			case "%":
				if b == 0 {
					return fmt.Errorf("division by zero in %q", expr)
				}
				r = a % b
			case "@":
				if b == 0 || b&(b-1) != 0 {
					return fmt.Errorf("bad alignment %d in %q", b, expr)
				}
				r = a &^ (b - 1)
			}
			if e.ptr == 4 {
				r &= 0xFFFFFFFF
			}
			push(r, "")
		case "^":
			a, err := pop()
			if err != nil {
				return err
			}
			v, err := kdump.ReadPointer(e.mem, a, e.ptr)
			if err != nil {
				return err
			}
			push(v, "")
		case "=":
			if !assign || len(e.stack) < 2 {
				return fmt.Errorf("unexpected = in %q", expr)
			}
			v, _ := pop()
			name := names[len(names)-1]
			if _, err := pop(); err != nil {
				return err
			}
			if name == "" {
				return fmt.Errorf("assignment to a value in %q", expr)
			}
			e.vars[name] = v
		default:
			if v, ok := e.vars[t]; ok {
				push(v, t)
				continue
			}
			if n, err := strconv.ParseInt(t, 0, 64); err == nil {
				push(uint64(n), "")
				continue
			}
			if assign && (strings.HasPrefix(t, "$") || strings.HasPrefix(t, ".")) {
				push(0, t) // a variable being defined
				continue
			}
			return fmt.Errorf("unknown token %q in %q", t, expr)
		}
	}
	return nil
}

// cfiCaller evaluates the Breakpad rules covering f's IP.
func (w *walker) cfiCaller(f *Frame, m *kdump.Module, first bool) (kdump.Context, RegSet, bool) {
	lookup := f.IP - m.Base
	if f.IsCaller() && lookup > 0 {
		lookup--
	}
	if lookup > 0xFFFFFFFF {
		return kdump.Context{}, 0, false
	}
	w.lastParams = 0
	rules, ok, err := w.in.CFI.Rules(w.ctx, *m, uint32(lookup))
	if err != nil || !ok || len(rules) == 0 {
		return kdump.Context{}, 0, false
	}
	e := &evaluator{vars: map[string]uint64{}, mem: w.in.Memory, ptr: w.ptrSize}
	for name, i := range w.names() {
		if f.Valid.Has(i) {
			e.vars[name] = f.Context.GPR[i]
		}
	}
	e.vars[w.pcName()] = f.IP
	c := *f.Context
	valid := RegSet(0)
	if prog, ok := rules[".program"]; ok {
		// STACK WIN FrameData: the program assigns $eip, $esp, $ebp, ...
		for _, k := range []string{".cbParams", ".cbSavedRegs", ".cbLocals", ".cbPrologue", ".cbCalleeParams"} {
			v, _ := strconv.ParseUint(rules[k], 0, 32)
			e.vars[k] = v
		}
		e.vars[".cbCalleeParams"] = f.calleeParams
		start := f.SP + f.calleeParams + e.vars[".cbLocals"] + e.vars[".cbSavedRegs"]
		e.vars[".raSearchStart"] = start
		// Like Breakpad, look a few words further when the expected slot
		// holds no plausible return address (unrecorded pushes).
		e.vars[".raSearch"] = start
		if strings.Contains(prog, ".raSearch") {
			for i := range uint64(4) {
				if v, ok := w.readPtr(start + i*uint64(w.ptrSize)); ok && w.looksLikeReturn(v) {
					e.vars[".raSearch"] = start + i*uint64(w.ptrSize)
					break
				}
			}
		}
		if err := e.run(prog, true); err != nil {
			return kdump.Context{}, 0, false
		}
		ip, ok1 := e.vars[w.pcName()]
		sp, ok2 := e.vars["$esp"]
		if !ok1 || !ok2 || ip == f.IP {
			return kdump.Context{}, 0, false
		}
		c.PC = ip
		for name, i := range w.names() {
			if v, ok := e.vars[name]; ok {
				c.GPR[i] = v
				valid |= 1 << i
			}
		}
		c.GPR[kdump.RegRSP] = sp
		w.lastParams = e.vars[".cbParams"]
		return c, valid | 1<<kdump.RegRSP, true
	}
	cfaExpr, ok1 := rules[".cfa"]
	raExpr, ok2 := rules[".ra"]
	if !ok1 || !ok2 {
		return kdump.Context{}, 0, false
	}
	cfa, err := e.eval(cfaExpr)
	if err != nil {
		return kdump.Context{}, 0, false
	}
	e.vars[".cfa"] = cfa
	ra, err := e.eval(raExpr)
	if err != nil {
		return kdump.Context{}, 0, false
	}
	for name, i := range w.names() {
		expr, ok := rules[name]
		if !ok {
			continue
		}
		v, err := e.eval(expr)
		if err != nil {
			continue
		}
		c.GPR[i] = v
		valid |= 1 << i
	}
	c.PC = ra
	if w.machine == kdump.MachineARM64 {
		c.PC = stripPAC(ra)
	}
	sp := spReg(w.machine)
	c.GPR[sp] = cfa
	valid |= 1 << sp
	return c, valid, true
}

// names returns the Breakpad register names of the machine.
func (w *walker) names() map[string]int {
	switch w.machine {
	case kdump.MachineAMD64:
		return regNamesX64
	case kdump.MachineI386:
		return regNamesX86
	}
	m := make(map[string]int, 33)
	for i := range 29 {
		m["x"+strconv.Itoa(i)] = i
	}
	m["x29"], m["x30"], m["sp"] = kdump.RegARM64FP, kdump.RegARM64LR, kdump.RegARM64SP
	return m
}
