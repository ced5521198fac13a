package minidump

import "fmt"

// KeyValue is one entry of a Crashpad simple string dictionary.
type KeyValue struct {
	Key, Value string
}

// CrashpadAnnotationString is the annotation type of UTF-8 string values.
const CrashpadAnnotationString = 1

// CrashpadAnnotation is a MinidumpAnnotation: a typed, named value.
type CrashpadAnnotation struct {
	Name  string
	Type  uint16 // CrashpadAnnotationString or a user-defined type
	Value []byte
}

// String returns the value as text for string annotations, else its size.
func (a CrashpadAnnotation) String() string {
	if a.Type == CrashpadAnnotationString {
		return string(a.Value)
	}
	return fmt.Sprintf("(type %#x, %d bytes)", a.Type, len(a.Value))
}

// CrashpadModuleInfo is a MinidumpModuleCrashpadInfo: annotations a module
// registered with Crashpad.
type CrashpadModuleInfo struct {
	ModuleIndex       uint32 // index into the module list
	Version           uint32
	ListAnnotations   []string
	SimpleAnnotations []KeyValue
	Annotations       []CrashpadAnnotation
}

// CrashpadInfo is MinidumpCrashpadInfo (CrashpadInfoStream) with its
// annotations read.
type CrashpadInfo struct {
	Version                   uint32
	ReportID                  GUID
	ClientID                  GUID
	SimpleAnnotationsLocation Location
	ModuleListLocation        Location
	// SimpleAnnotations are the process's key-value annotations (for
	// Chromium and Electron: prod, ver, plat, ptype...).
	SimpleAnnotations []KeyValue
	Modules           []CrashpadModuleInfo
	// Problems lists annotation data that could not be read.
	Problems []error
}

// Annotation returns the value of the process simple annotation key, or
// the first module simple annotation or string annotation of that name.
func (c *CrashpadInfo) Annotation(key string) (string, bool) {
	for _, kv := range c.SimpleAnnotations {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	for _, m := range c.Modules {
		for _, kv := range m.SimpleAnnotations {
			if kv.Key == key {
				return kv.Value, true
			}
		}
		for _, a := range m.Annotations {
			if a.Name == key && a.Type == CrashpadAnnotationString {
				return string(a.Value), true
			}
		}
	}
	return "", false
}

const maxUTF8String = 1 << 16

// utf8String reads a MinidumpUTF8String (u32 length, bytes) at rva.
func (f *File) utf8String(rva uint32) (string, error) {
	b, err := f.byteArray(rva, "UTF-8 string", maxUTF8String)
	return cString(b), err
}

// byteArray reads a u32-length-prefixed byte array (MinidumpUTF8String,
// MinidumpByteArray) at rva.
func (f *File) byteArray(rva uint32, what string, limit uint32) ([]byte, error) {
	var lb [4]byte
	if err := f.readFull(lb[:], int64(rva), what); err != nil {
		return nil, err
	}
	n := le.Uint32(lb[:])
	if n > limit {
		return nil, formatErr(int64(rva), what, ErrTooLarge, "%d bytes", n)
	}
	if err := f.charge(int64(n), int64(rva), what); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if err := f.readFull(b, int64(rva)+4, what); err != nil {
		return nil, err
	}
	return b, nil
}

// countedList reads a "u32 count, entries[count]" structure of entrySize-byte
// entries at l (l.DataSize 0 means: size not given, trust the count within
// the file).
func (f *File) countedList(l Location, what string, entrySize int) ([]byte, int, error) {
	var cb [4]byte
	if err := f.readFull(cb[:], int64(l.Rva), what); err != nil {
		return nil, 0, err
	}
	n := int64(le.Uint32(cb[:]))
	if n > maxListEntries {
		return nil, 0, formatErr(int64(l.Rva), what, ErrTooLarge, "%d entries", n)
	}
	size := 4 + n*int64(entrySize)
	if l.DataSize != 0 && size > int64(l.DataSize) {
		return nil, 0, formatErr(int64(l.Rva), what, ErrTruncated, "%d entries need %d bytes, descriptor gives %d", n, size, l.DataSize)
	}
	b, err := f.ReadLocation(Location{DataSize: uint32(size), Rva: l.Rva}, what, maxStreamSize)
	if err != nil {
		return nil, 0, err
	}
	return b[4:], int(n), nil
}

// dictionary reads a MinidumpSimpleStringDictionary.
func (f *File) dictionary(l Location, probs *[]error) []KeyValue {
	if l.Rva == 0 {
		return nil
	}
	b, n, err := f.countedList(l, "Crashpad dictionary", 8)
	if err != nil {
		*probs = append(*probs, err)
		return nil
	}
	out := make([]KeyValue, 0, n)
	for i := range n {
		k, err1 := f.utf8String(le.Uint32(b[8*i:]))
		v, err2 := f.utf8String(le.Uint32(b[8*i+4:]))
		if err := firstErr(err1, err2); err != nil {
			*probs = append(*probs, err)
			continue
		}
		out = append(out, KeyValue{Key: k, Value: v})
	}
	return out
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// CrashpadInfo returns the CrashpadInfoStream with the process and module
// annotations. Annotation data that cannot be read is listed in Problems.
func (f *File) CrashpadInfo() (*CrashpadInfo, error) {
	return f.crashpadInfo.get(func() (*CrashpadInfo, error) {
		b, off, err := f.streamBytes(CrashpadInfoStream)
		if err != nil {
			return nil, err
		}
		if len(b) < 52 {
			return nil, formatErr(off, "Crashpad info", ErrTruncated, "%d bytes, need 52", len(b))
		}
		c := &CrashpadInfo{Version: le.Uint32(b), ReportID: parseGUID(b[4:]), ClientID: parseGUID(b[20:]),
			SimpleAnnotationsLocation: Location{DataSize: le.Uint32(b[36:]), Rva: le.Uint32(b[40:])},
			ModuleListLocation:        Location{DataSize: le.Uint32(b[44:]), Rva: le.Uint32(b[48:])}}
		c.SimpleAnnotations = f.dictionary(c.SimpleAnnotationsLocation, &c.Problems)
		if c.ModuleListLocation.Rva == 0 {
			return c, nil
		}
		links, n, err := f.countedList(c.ModuleListLocation, "Crashpad module list", 12)
		if err != nil {
			c.Problems = append(c.Problems, err)
			return c, nil
		}
		for i := range n {
			e := links[12*i:]
			loc := Location{DataSize: le.Uint32(e[4:]), Rva: le.Uint32(e[8:])}
			mb, err := f.ReadLocation(loc, "Crashpad module info", 1<<12)
			if err == nil && len(mb) < 28 {
				err = formatErr(int64(loc.Rva), "Crashpad module info", ErrTruncated, "%d bytes, need 28", len(mb))
			}
			if err != nil {
				c.Problems = append(c.Problems, err)
				continue
			}
			m := CrashpadModuleInfo{ModuleIndex: le.Uint32(e), Version: le.Uint32(mb)}
			listLoc := Location{DataSize: le.Uint32(mb[4:]), Rva: le.Uint32(mb[8:])}
			simpleLoc := Location{DataSize: le.Uint32(mb[12:]), Rva: le.Uint32(mb[16:])}
			objLoc := Location{DataSize: le.Uint32(mb[20:]), Rva: le.Uint32(mb[24:])}
			if listLoc.Rva != 0 {
				if lb, ln, err := f.countedList(listLoc, "Crashpad list annotations", 4); err != nil {
					c.Problems = append(c.Problems, err)
				} else {
					for j := range ln {
						s, err := f.utf8String(le.Uint32(lb[4*j:]))
						if err != nil {
							c.Problems = append(c.Problems, err)
							continue
						}
						m.ListAnnotations = append(m.ListAnnotations, s)
					}
				}
			}
			m.SimpleAnnotations = f.dictionary(simpleLoc, &c.Problems)
			if objLoc.Rva != 0 {
				if ob, on, err := f.countedList(objLoc, "Crashpad annotation objects", 12); err != nil {
					c.Problems = append(c.Problems, err)
				} else {
					for j := range on {
						o := ob[12*j:]
						name, err1 := f.utf8String(le.Uint32(o))
						val, err2 := f.byteArray(le.Uint32(o[8:]), "Crashpad annotation value", maxUTF8String)
						if err := firstErr(err1, err2); err != nil {
							c.Problems = append(c.Problems, err)
							continue
						}
						m.Annotations = append(m.Annotations, CrashpadAnnotation{Name: name, Type: le.Uint16(o[4:]), Value: val})
					}
				}
			}
			c.Modules = append(c.Modules, m)
		}
		return c, nil
	})
}
