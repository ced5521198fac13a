package pdb

import (
	"strconv"
	"strings"
)

// Undecorate turns common MSVC-decorated names into readable ones:
//
//	?name@Class@ns@@<type>       -> ns::Class::name
//	??0Class@@<type>             -> Class::Class   (constructor)
//	??1Class@@<type>             -> Class::~Class  (destructor)
//	??4Class@@<type>             -> Class::operator= (and the other operators)
//	??_GClass@@<type>            -> Class::`scalar deleting destructor'
//	?name@?$tmpl@H@ns@@<type>    -> kept decorated (templates are not decoded)
//	_name@12, @name@8            -> name          (x86 __stdcall / __fastcall)
//
// Names it does not understand are returned unchanged, so the result is
// always usable. Plain C names are returned as they are; stripping the x86
// leading underscore of __cdecl names is left to UndecorateX86.
func Undecorate(name string) string {
	if strings.HasPrefix(name, "?") {
		if s, ok := undecorateCPP(name); ok {
			return s
		}
		return name
	}
	if s, ok := stripCallConv(name); ok {
		return s
	}
	return name
}

// UndecorateX86 is Undecorate for 32-bit x86 images, where C compilers also
// prefix __cdecl names with an underscore ("_main" -> "main").
func UndecorateX86(name string) string {
	if s := Undecorate(name); s != name {
		return s
	}
	if len(name) > 1 && name[0] == '_' {
		return name[1:]
	}
	return name
}

// stripCallConv removes the x86 __stdcall ("_f@12") or __fastcall ("@f@8")
// decoration.
func stripCallConv(name string) (string, bool) {
	if len(name) < 3 || (name[0] != '_' && name[0] != '@') {
		return "", false
	}
	at := strings.LastIndexByte(name, '@')
	if at <= 1 || at == len(name)-1 {
		return "", false
	}
	for _, c := range name[at+1:] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return name[1:at], true
}

// operatorName maps the code after "??" (or "??_") to a special name.
// "0" and "1" (constructor, destructor) take the class name instead.
func operatorName(code string) (string, bool) {
	switch code {
	case "2":
		return "operator new", true
	case "3":
		return "operator delete", true
	case "4":
		return "operator=", true
	case "5":
		return "operator>>", true
	case "6":
		return "operator<<", true
	case "7":
		return "operator!", true
	case "8":
		return "operator==", true
	case "9":
		return "operator!=", true
	case "A":
		return "operator[]", true
	case "C":
		return "operator->", true
	case "D":
		return "operator*", true
	case "E":
		return "operator++", true
	case "F":
		return "operator--", true
	case "G":
		return "operator-", true
	case "H":
		return "operator+", true
	case "I":
		return "operator&", true
	case "J":
		return "operator->*", true
	case "K":
		return "operator/", true
	case "L":
		return "operator%", true
	case "M":
		return "operator<", true
	case "N":
		return "operator<=", true
	case "O":
		return "operator>", true
	case "P":
		return "operator>=", true
	case "Q":
		return "operator,", true
	case "R":
		return "operator()", true
	case "S":
		return "operator~", true
	case "T":
		return "operator^", true
	case "U":
		return "operator|", true
	case "V":
		return "operator&&", true
	case "W":
		return "operator||", true
	case "X":
		return "operator*=", true
	case "Y":
		return "operator+=", true
	case "Z":
		return "operator-=", true
	case "_0":
		return "operator/=", true
	case "_1":
		return "operator%=", true
	case "_2":
		return "operator>>=", true
	case "_3":
		return "operator<<=", true
	case "_4":
		return "operator&=", true
	case "_5":
		return "operator|=", true
	case "_6":
		return "operator^=", true
	case "_7":
		return "`vftable'", true
	case "_8":
		return "`vbtable'", true
	case "_E":
		return "`vector deleting destructor'", true
	case "_G":
		return "`scalar deleting destructor'", true
	case "_U":
		return "operator new[]", true
	case "_V":
		return "operator delete[]", true
	}
	return "", false
}

// undecorateCPP decodes the qualified name of a "?..." symbol. The type
// signature after the name is not decoded (debuggers' stack displays omit it).
func undecorateCPP(name string) (string, bool) {
	d := &demangler{s: name[1:]}
	q, ok := d.qualifiedName()
	if !ok {
		return "", false
	}
	return q, true
}

// demangler parses the name part of MSVC-decorated symbols: qualified names
// with templates, back-references and special names, and the types that
// appear as template arguments. Anything else makes it give up, and the
// caller keeps the decorated name.
type demangler struct {
	s     string
	pos   int
	names []string // name back-reference table (0-9)
	types []string // type back-reference table (0-9)
	depth int
}

// maxDemangleDepth bounds nesting of templates in templates.
const maxDemangleDepth = 16

func (d *demangler) peek() byte {
	if d.pos < len(d.s) {
		return d.s[d.pos]
	}
	return 0
}

func (d *demangler) consume(prefix string) bool {
	if strings.HasPrefix(d.s[d.pos:], prefix) {
		d.pos += len(prefix)
		return true
	}
	return false
}

func (d *demangler) remember(name string) {
	if len(d.names) < 10 {
		d.names = append(d.names, name)
	}
}

// qualifiedName parses "[special] fragment... @" and returns "a::b::c".
func (d *demangler) qualifiedName() (string, bool) {
	special, op := "", ""
	if rest := d.s[d.pos:]; strings.HasPrefix(rest, "?") && !strings.HasPrefix(rest, "?$") && !strings.HasPrefix(rest, "?A0x") {
		// ??0 constructor, ??1 destructor, ??2.. operators.
		d.pos++
		code := ""
		switch {
		case d.peek() == '_' && d.pos+1 < len(d.s):
			code = d.s[d.pos : d.pos+2]
		case d.pos < len(d.s):
			code = d.s[d.pos : d.pos+1]
		default:
			return "", false
		}
		switch code {
		case "0", "1":
			special = code
		default:
			var ok bool
			if op, ok = operatorName(code); !ok {
				return "", false // conversion operators, RTTI, ...
			}
		}
		d.pos += len(code)
	}
	var parts []string // innermost first
	for !d.consume("@") {
		frag, ok := d.fragment()
		if !ok {
			return "", false
		}
		parts = append(parts, frag)
	}
	if len(parts) == 0 && op == "" {
		return "", false
	}
	switch {
	// Constructors and destructors are named after their class fragment,
	// template arguments included (unique_ptr<T>::~unique_ptr<T>), as
	// MSVC's own undecoration does.
	case special == "0":
		parts = append([]string{parts[0]}, parts...)
	case special == "1":
		parts = append([]string{"~" + parts[0]}, parts...)
	case op != "":
		parts = append([]string{op}, parts...)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteString(parts[i])
		if i > 0 {
			b.WriteString("::")
		}
	}
	return b.String(), true
}

// fragment parses one name fragment: an identifier, a back-reference, a
// template instance or an anonymous namespace.
func (d *demangler) fragment() (string, bool) {
	c := d.peek()
	switch {
	case c == 0:
		return "", false
	case c >= '0' && c <= '9':
		d.pos++
		i := int(c - '0')
		if i >= len(d.names) {
			return "", false
		}
		return d.names[i], true
	case d.consume("?$"):
		t, ok := d.template()
		if ok {
			d.remember(t)
		}
		return t, ok
	case d.consume("?A0x"):
		// Anonymous namespace: ?A0x<hex>@
		end := strings.IndexByte(d.s[d.pos:], '@')
		if end < 0 {
			return "", false
		}
		d.pos += end + 1
		const anon = "`anonymous namespace'"
		d.remember(anon)
		return anon, true
	case c == '?':
		return "", false
	}
	end := strings.IndexByte(d.s[d.pos:], '@')
	if end <= 0 {
		return "", false
	}
	frag := d.s[d.pos : d.pos+end]
	for _, r := range frag {
		// '<' and '>' appear in compiler-generated names (<lambda_...>).
		if !(r == '_' || r == '$' || r == '<' || r == '>' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= 0x80) {
			return "", false
		}
	}
	d.pos += end + 1
	d.remember(frag)
	return frag, true
}

// template parses "name@args@" after "?$" and returns "name<args>". The
// arguments have their own back-reference tables.
func (d *demangler) template() (string, bool) {
	if d.depth >= maxDemangleDepth {
		return "", false
	}
	inner := &demangler{s: d.s, pos: d.pos, depth: d.depth + 1}
	var name string
	if inner.peek() == '?' {
		return "", false // templated operators and constructors
	}
	end := strings.IndexByte(d.s[d.pos:], '@')
	if end <= 0 {
		return "", false
	}
	name = d.s[d.pos : d.pos+end]
	inner.pos += end + 1
	inner.remember(name)
	var args []string
	for !inner.consume("@") {
		if inner.pos >= len(inner.s) {
			return "", false
		}
		if inner.consume("$$V") || inner.consume("$$Z") {
			continue // empty parameter pack, pack separator
		}
		t, ok := inner.typ()
		if !ok {
			return "", false
		}
		args = append(args, t)
	}
	d.pos = inner.pos
	out := name + "<" + strings.Join(args, ",")
	if strings.HasSuffix(out, ">") {
		out += " "
	}
	return out + ">", true
}

// typ parses one type (as found in template arguments).
func (d *demangler) typ() (string, bool) {
	start := d.pos
	c := d.peek()
	if c >= '0' && c <= '9' {
		d.pos++
		i := int(c - '0')
		if i >= len(d.types) {
			return "", false
		}
		return d.types[i], true
	}
	t, ok := d.typeBody()
	if ok && d.pos-start > 1 && len(d.types) < 10 {
		d.types = append(d.types, t)
	}
	return t, ok
}

func (d *demangler) typeBody() (string, bool) {
	if d.depth >= maxDemangleDepth {
		return "", false
	}
	c := d.peek()
	if name, ok := primitiveType(c); ok {
		d.pos++
		return name, true
	}
	switch {
	case d.consume("_"):
		c := d.peek()
		d.pos++
		switch c {
		case 'J':
			return "__int64", true
		case 'K':
			return "unsigned __int64", true
		case 'N':
			return "bool", true
		case 'W':
			return "wchar_t", true
		case 'S':
			return "char16_t", true
		case 'U':
			return "char32_t", true
		case 'Q':
			return "char8_t", true
		}
		return "", false
	case d.consume("W4"):
		n, ok := d.qualifiedName()
		return "enum " + n, ok
	case d.consume("V"), d.consume("U"), d.consume("T"):
		return d.qualifiedName()
	case d.consume("$$Q"):
		return d.indirect("&&")
	case d.consume("$0"):
		return d.number()
	case c == 'P' || c == 'Q' || c == 'R' || c == 'S':
		d.pos++
		if d.peek() == '6' || d.peek() == '8' {
			return "", false // function and member pointers
		}
		// Q, R and S qualify the pointer itself.
		return d.indirect([...]string{"*", "* const", "* volatile", "* const volatile"}[c-'P'])
	case c == 'A':
		d.pos++
		return d.indirect("&")
	}
	return "", false
}

// indirect parses "[E] cv type" after a pointer or reference code.
func (d *demangler) indirect(sym string) (string, bool) {
	d.consume("E") // __ptr64
	d.consume("I") // __restrict
	cv := ""
	switch d.peek() {
	case 'A':
	case 'B':
		cv = " const"
	case 'C':
		cv = " volatile"
	case 'D':
		cv = " const volatile"
	default:
		return "", false
	}
	d.pos++
	d.depth++
	t, ok := d.typ()
	d.depth--
	if !ok {
		return "", false
	}
	// A reference to a const pointer carries the pointer's const twice
	// (AEBQEAD): print it once, as "char * const &".
	if cv != "" && strings.HasSuffix(t, cv) {
		cv = ""
	}
	return t + cv + " " + sym, true
}

// number parses an encoded integer: 0-9 stand for 1-10, otherwise hex
// digits written A-P and terminated by '@'; '?' negates.
func (d *demangler) number() (string, bool) {
	neg := d.consume("?")
	c := d.peek()
	var v uint64
	switch {
	case c >= '0' && c <= '9':
		v = uint64(c-'0') + 1
		d.pos++
	default:
		n := 0
		for ; d.peek() != '@'; n++ {
			c := d.peek()
			if c < 'A' || c > 'P' || n >= 16 {
				return "", false
			}
			v = v<<4 | uint64(c-'A')
			d.pos++
		}
		d.pos++
	}
	if neg {
		return "-" + strconv.FormatUint(v, 10), true
	}
	return strconv.FormatUint(v, 10), true
}

func primitiveType(c byte) (string, bool) {
	switch c {
	case 'C':
		return "signed char", true
	case 'D':
		return "char", true
	case 'E':
		return "unsigned char", true
	case 'F':
		return "short", true
	case 'G':
		return "unsigned short", true
	case 'H':
		return "int", true
	case 'I':
		return "unsigned int", true
	case 'J':
		return "long", true
	case 'K':
		return "unsigned long", true
	case 'M':
		return "float", true
	case 'N':
		return "double", true
	case 'O':
		return "long double", true
	case 'X':
		return "void", true
	}
	return "", false
}
