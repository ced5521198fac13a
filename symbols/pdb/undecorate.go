package pdb

import "strings"

// Undecorate turns common MSVC-decorated names into readable ones:
//
//	?name@Class@ns@@<type>       -> ns::Class::name
//	??0Class@@<type>             -> Class::Class   (constructor)
//	??1Class@@<type>             -> Class::~Class  (destructor)
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

// undecorateCPP decodes the qualified name of a "?..." symbol.
func undecorateCPP(name string) (string, bool) {
	s := name[1:]
	special := ""
	if strings.HasPrefix(s, "?") {
		// Special names: ??0 ctor, ??1 dtor; other operators are not decoded.
		if len(s) < 2 {
			return "", false
		}
		switch s[1] {
		case '0', '1':
			special = s[1:2]
			s = s[2:]
		default:
			return "", false
		}
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
	if len(parts) == 0 {
		return "", false
	}
	switch special {
	case "0":
		parts = append([]string{parts[0]}, parts...)
	case "1":
		parts = append([]string{"~" + parts[0]}, parts...)
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
