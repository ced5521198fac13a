package minidump

// HandleObjectInfo is one MINIDUMP_HANDLE_OBJECT_INFORMATION in a
// descriptor's chain.
type HandleObjectInfo struct {
	InfoType uint32 // MiniHandleObjectInformationType
	Data     []byte
}

// HandleDescriptor is a MINIDUMP_HANDLE_DESCRIPTOR or _2, with its names
// read.
type HandleDescriptor struct {
	Handle        uint64
	TypeName      string
	ObjectName    string
	Attributes    uint32
	GrantedAccess uint32
	HandleCount   uint32
	PointerCount  uint32
	ObjectInfoRva uint32 // _2 only
	// ObjectInfo is the chain at ObjectInfoRva (_2 only).
	ObjectInfo []HandleObjectInfo
}

// HandleData is the HandleDataStream.
type HandleData struct {
	SizeOfHeader     uint32
	SizeOfDescriptor uint32 // 32 (v1) or 40 (v2)
	Descriptors      []HandleDescriptor
	// Problems lists names and object-information chains that could not be
	// read; the descriptors themselves are complete.
	Problems []error
}

const (
	maxHandleInfoChain = 64
	maxHandleInfoSize  = 1 << 12
)

// HandleData returns the HandleDataStream.
func (f *File) HandleData() (*HandleData, error) {
	return f.handles.get(func() (*HandleData, error) {
		b, off, err := f.streamBytes(HandleDataStream)
		if err != nil {
			return nil, err
		}
		n, stride, start, err := tableHeader(b, off, "handle data", 32, false)
		if err != nil {
			return nil, err
		}
		h := &HandleData{SizeOfHeader: uint32(start), SizeOfDescriptor: uint32(stride), Descriptors: make([]HandleDescriptor, n)}
		names := map[uint32]string{} // type names repeat: read each RVA once
		name := func(rva uint32) string {
			if rva == 0 {
				return ""
			}
			if s, ok := names[rva]; ok {
				return s
			}
			s, err := f.ReadString(rva)
			if err != nil {
				h.Problems = append(h.Problems, err)
			}
			names[rva] = s
			return s
		}
		for i := range h.Descriptors {
			e := b[start+i*stride:]
			d := &h.Descriptors[i]
			d.Handle = le.Uint64(e)
			d.TypeName = name(le.Uint32(e[8:]))
			d.ObjectName = name(le.Uint32(e[12:]))
			d.Attributes = le.Uint32(e[16:])
			d.GrantedAccess = le.Uint32(e[20:])
			d.HandleCount = le.Uint32(e[24:])
			d.PointerCount = le.Uint32(e[28:])
			if stride >= 40 {
				d.ObjectInfoRva = le.Uint32(e[32:])
				d.ObjectInfo = f.handleObjectInfo(d.ObjectInfoRva, &h.Problems)
			}
		}
		return h, nil
	})
}

// handleObjectInfo reads the chain of object-information records at rva,
// stopping at a cycle, a bad record or after maxHandleInfoChain records.
func (f *File) handleObjectInfo(rva uint32, probs *[]error) []HandleObjectInfo {
	var out []HandleObjectInfo
	seen := map[uint32]bool{}
	for rva != 0 && len(out) < maxHandleInfoChain {
		if seen[rva] {
			*probs = append(*probs, formatErr(int64(rva), "handle object info", nil, "chain loops back to %#x", rva))
			break
		}
		seen[rva] = true
		var hb [12]byte
		if err := f.readFull(hb[:], int64(rva), "handle object info"); err != nil {
			*probs = append(*probs, err)
			break
		}
		next, typ, size := le.Uint32(hb[:]), le.Uint32(hb[4:]), le.Uint32(hb[8:])
		if size > maxHandleInfoSize {
			*probs = append(*probs, formatErr(int64(rva)+8, "handle object info", ErrTooLarge, "%d bytes", size))
			break
		}
		if err := f.charge(int64(size), int64(rva)+8, "handle object info"); err != nil {
			*probs = append(*probs, err)
			break
		}
		data := make([]byte, size)
		if err := f.readFull(data, int64(rva)+12, "handle object info"); err != nil {
			*probs = append(*probs, err)
			break
		}
		out = append(out, HandleObjectInfo{InfoType: typ, Data: data})
		rva = next
	}
	return out
}
