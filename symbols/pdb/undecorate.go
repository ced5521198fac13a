package pdb

import "strings"

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

// undecorateCPP decodes the qualified name of a "?..." symbol.
func undecorateCPP(name string) (string, bool) {
	s := name[1:]
	special, op := "", ""
	if strings.HasPrefix(s, "?") {
		// Special names: ??0 constructor, ??1 destructor, ??2.. operators.
		s = s[1:]
		code := ""
		switch {
		case strings.HasPrefix(s, "_") && len(s) >= 2:
			code = s[:2]
		case len(s) >= 1:
			code = s[:1]
		default:
			return "", false
		}
		switch code {
		case "0", "1":
			special = code
		default:
			var ok bool
			if op, ok = operatorName(code); !ok {
				return "", false // conversion operators, templates, RTTI...
			}
		}
		s = s[len(code):]
	}
	var parts []string // innermost first
	var memo []string  // fragments that back-references can name
	for {
		if strings.HasPrefix(s, "@") {
			break
		}
		if s == "" {
			return "", false
		}
		c := s[0]
		switch {
		case c >= '0' && c <= '9':
			// Back-reference to an earlier name fragment.
			i := int(c - '0')
			if i >= len(memo) {
				return "", false
			}
			parts = append(parts, memo[i])
			s = s[1:]
		case c == '?':
			// Template instance or nested special name: not decoded.
			return "", false
		default:
			at := strings.IndexByte(s, '@')
			if at <= 0 {
				return "", false
			}
			frag := s[:at]
			for _, r := range frag {
				if !(r == '_' || r == '$' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= 0x80) {
					return "", false
				}
			}
			parts = append(parts, frag)
			if len(memo) < 10 {
				memo = append(memo, frag)
			}
			s = s[at+1:]
		}
	}
	if len(parts) == 0 && op == "" {
		return "", false
	}
	switch {
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
