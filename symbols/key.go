package symbols

import (
	"fmt"
	"strings"
)

// KeyKind says what a Key identifies.
type KeyKind uint8

// Kinds of keys.
const (
	KindOther    KeyKind = iota // a key parsed from text or built by hand
	KindImage                   // a PE image: TimeDateStamp + SizeOfImage
	KindPDB                     // a PDB: GUID (or NB10 signature) + age
	KindBreakpad                // a Breakpad text .sym file
)

// String returns the kind's name.
func (k KeyKind) String() string {
	switch k {
	case KindOther:
		return "other"
	case KindImage:
		return "image"
	case KindPDB:
		return "pdb"
	case KindBreakpad:
		return "breakpad"
	}
	return fmt.Sprintf("KeyKind(%d)", uint8(k))
}

// Key names one file in a symbol store: the store holds it at
// Name/ID/File relative to the store root (or, in a two-tier store, under a
// two-character prefix directory first). For PE images and PDBs File equals
// Name; for Breakpad symbols File is Name without ".pdb" plus ".sym".
//
// Keys are built from untrusted dump data. Stores call Validate before they
// touch the file system, so a key can never name anything outside a store.
type Key struct {
	Name string  // the file name the debuggee knew (ntkrnlmp.pdb, amdppm.sys)
	ID   string  // the index directory (GUID+age, timestamp+size, Breakpad ID)
	File string  // the file name inside the index directory
	Kind KeyKind // what the key identifies (informational)
}

// baseName returns the last element of p, splitting on both '/' and '\'
// (names from dumps and CodeView records are Windows paths).
func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// ImageKey returns the key of a PE image (exe, dll, sys): the index is the
// TimeDateStamp as 8 uppercase hex digits followed by SizeOfImage in
// lowercase hex without padding ("%08X%x"), as SymStore and symsrv write it.
// Only the base name of name is used.
func ImageKey(name string, timeDateStamp, sizeOfImage uint32) Key {
	n := baseName(name)
	return Key{Name: n, ID: fmt.Sprintf("%08X%x", timeDateStamp, sizeOfImage), File: n, Kind: KindImage}
}

// PDBKey returns the key of a PDB with a CodeView RSDS identity: the index is
// the GUID as 32 uppercase hex digits (Data1, Data2, Data3 as integers, then
// the Data4 bytes) followed by the age in uppercase hex without padding.
// Take name from the CodeView record (ntkrnlmp.pdb, not ntoskrnl.exe); only
// its base name is used.
func PDBKey(name string, guid GUID, age uint32) Key {
	n := baseName(name)
	return Key{Name: n, ID: guid.Hex() + fmt.Sprintf("%X", age), File: n, Kind: KindPDB}
}

// NB10Key returns the key of a PDB 2.0 (CodeView NB10) file: the 32-bit
// signature as 8 uppercase hex digits followed by the age in uppercase hex.
func NB10Key(name string, signature, age uint32) Key {
	n := baseName(name)
	return Key{Name: n, ID: fmt.Sprintf("%08X%X", signature, age), File: n, Kind: KindPDB}
}

// BreakpadKey returns the key of a Breakpad .sym file in symbol-store layout:
// debugFile/debugID/base.sym, where base is debugFile without a ".pdb"
// extension (test_app.pdb/5A98...1/test_app.sym; an ELF module keeps its
// name: libc.so.6/ID/libc.so.6.sym). debugID is used as given, uppercased.
func BreakpadKey(debugFile, debugID string) Key {
	n := baseName(debugFile)
	f := n
	if len(f) > 4 && strings.EqualFold(f[len(f)-4:], ".pdb") {
		f = f[:len(f)-4]
	}
	return Key{Name: n, ID: strings.ToUpper(debugID), File: f + ".sym", Kind: KindBreakpad}
}

// ParseKey parses "name/id/file" (or with backslashes). It validates the
// result.
func ParseKey(s string) (Key, error) {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == '\\' })
	if len(parts) != 3 {
		return Key{}, &KeyError{Key: s, Reason: "want NAME/ID/FILE"}
	}
	k := Key{Name: parts[0], ID: parts[1], File: parts[2]}
	if strings.HasSuffix(k.File, ".sym") && !strings.HasSuffix(k.Name, ".sym") {
		k.Kind = KindBreakpad
	}
	if err := k.Validate(); err != nil {
		return Key{}, err
	}
	return k, nil
}

// String returns the key as a relative slash-separated path: Name/ID/File.
func (k Key) String() string { return k.Name + "/" + k.ID + "/" + k.File }

// CompressedFile returns the name a compressed copy of the file has in a
// store: File with its last character replaced by '_' (ntkrnlmp.pd_).
func (k Key) CompressedFile() string {
	if k.File == "" {
		return ""
	}
	return k.File[:len(k.File)-1] + "_"
}

// KeyError reports a key that cannot be used safely as a path.
type KeyError struct {
	Key    string // the key as given
	Reason string // why it was rejected
}

func (e *KeyError) Error() string { return fmt.Sprintf("symbols: invalid key %q: %s", e.Key, e.Reason) }

// Maximum lengths of key parts. Windows limits a path component to 255
// characters; index directories are at most 32+8 hex digits in practice.
const (
	maxNameLen = 255
	maxIDLen   = 64
)

// Validate checks that every part of k is a single, harmless path component:
// not empty, not "." or "..", no '/' or '\', no NUL or other control
// characters, no ':' (drive letters, NTFS streams), no trailing dot or space
// (Windows strips them), not a Windows device name (CON, NUL, COM1,
// LPT1.pdb...: opening one on Windows opens the device), at most 255 bytes;
// the name must not start with
// ".." (its two-character two-tier prefix would be ".."); the ID must be
// ASCII letters and digits only.
func (k Key) Validate() error {
	for _, p := range []struct{ what, v string }{{"name", k.Name}, {"file", k.File}} {
		if r := checkComponent(p.v); r != "" {
			return &KeyError{Key: k.String(), Reason: p.what + " " + r}
		}
	}
	// A two-tier store files Name under its first two characters, which
	// must not be "..".
	if strings.HasPrefix(k.Name, "..") {
		return &KeyError{Key: k.String(), Reason: `name starts with ".."`}
	}
	if k.ID == "" {
		return &KeyError{Key: k.String(), Reason: "empty id"}
	}
	if len(k.ID) > maxIDLen {
		return &KeyError{Key: k.String(), Reason: "id too long"}
	}
	for i := 0; i < len(k.ID); i++ {
		c := k.ID[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return &KeyError{Key: k.String(), Reason: "id must be letters and digits"}
		}
	}
	return nil
}

// checkComponent returns why s is not a safe path component, or "".
func checkComponent(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > maxNameLen:
		return "is too long"
	case s == "." || s == "..":
		return "is a relative directory"
	case strings.HasSuffix(s, ".") || strings.HasSuffix(s, " "):
		return "ends in a dot or space"
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return "contains a control character"
		case c == '/' || c == '\\':
			return "contains a path separator"
		case c == ':':
			return "contains ':'"
		}
	}
	if windowsDevice(s) {
		return "is a Windows device name"
	}
	return ""
}

// windowsDevice reports whether Windows would open the device s names
// instead of a file: CON, PRN, AUX, NUL, COM0-9, LPT0-9, CONIN$ and
// CONOUT$, in any case, also with an extension or blanks before it
// ("nul.pdb", "COM1 .sys").
func windowsDevice(s string) bool {
	stem, _, _ := strings.Cut(s, ".")
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	switch stem {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	return len(stem) == 4 && (strings.HasPrefix(stem, "COM") || strings.HasPrefix(stem, "LPT")) && '0' <= stem[3] && stem[3] <= '9'
}
