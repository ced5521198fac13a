package minidump

// Thread is a MINIDUMP_THREAD (ThreadListStream) or MINIDUMP_THREAD_EX
// (ThreadExListStream, which adds BackingStore).
type Thread struct {
	ID            uint32
	SuspendCount  uint32
	PriorityClass uint32
	Priority      uint32
	Teb           uint64
	Stack         MemoryDescriptor
	Context       Location // the thread's CONTEXT record
	BackingStore  MemoryDescriptor
}

func parseMemDesc(b []byte) MemoryDescriptor {
	return MemoryDescriptor{Start: le.Uint64(b), Location: Location{DataSize: le.Uint32(b[8:]), Rva: le.Uint32(b[12:])}}
}

func (f *File) parseThreads(t StreamType) ([]Thread, error) {
	b, off, err := f.streamBytes(t)
	if err != nil {
		return nil, err
	}
	size := 48
	if t == ThreadExListStream {
		size = 64
	}
	n, start, err := listHeader(b, off, t.String(), size)
	if err != nil {
		return nil, err
	}
	out := make([]Thread, n)
	for i := range out {
		e := b[start+i*size:]
		th := &out[i]
		th.ID = le.Uint32(e)
		th.SuspendCount = le.Uint32(e[4:])
		th.PriorityClass = le.Uint32(e[8:])
		th.Priority = le.Uint32(e[12:])
		th.Teb = le.Uint64(e[16:])
		th.Stack = parseMemDesc(e[24:])
		th.Context = Location{DataSize: le.Uint32(e[40:]), Rva: le.Uint32(e[44:])}
		if size == 64 {
			th.BackingStore = parseMemDesc(e[48:])
		}
	}
	return out, nil
}

// Threads returns the ThreadListStream entries, or, if the dump has only a
// ThreadExListStream, those.
func (f *File) Threads() ([]Thread, error) {
	if !f.HasStream(ThreadListStream) && f.HasStream(ThreadExListStream) {
		return f.ThreadsEx()
	}
	return f.threads.get(func() ([]Thread, error) { return f.parseThreads(ThreadListStream) })
}

// ThreadsEx returns the ThreadExListStream entries.
func (f *File) ThreadsEx() ([]Thread, error) {
	return f.threadsEx.get(func() ([]Thread, error) { return f.parseThreads(ThreadExListStream) })
}

// Thread returns the thread with the given id.
func (f *File) Thread(id uint32) (*Thread, error) {
	ts, err := f.Threads()
	if err != nil {
		return nil, err
	}
	for i := range ts {
		if ts[i].ID == id {
			return &ts[i], nil
		}
	}
	return nil, formatErr(-1, "thread list", ErrNoStream, "no thread %#x", id)
}

// ContextBytes returns a raw CONTEXT record (a thread's or the exception's).
// Decode it with the register layout for SystemInfo().ProcessorArchitecture.
func (f *File) ContextBytes(l Location) ([]byte, error) {
	if l.DataSize == 0 {
		return nil, formatErr(int64(l.Rva), "thread context", ErrNoStream, "empty context")
	}
	return f.ReadLocation(l, "thread context", maxContextSize)
}

// ThreadName is a MINIDUMP_THREAD_NAME with its name read.
type ThreadName struct {
	ThreadID uint32
	Rva      uint64
	Name     string
}

// ThreadNames returns the ThreadNamesStream entries. A name that cannot be
// read is left empty.
func (f *File) ThreadNames() ([]ThreadName, error) {
	return f.threadNames.get(func() ([]ThreadName, error) {
		b, off, err := f.streamBytes(ThreadNamesStream)
		if err != nil {
			return nil, err
		}
		n, start, err := listHeader(b, off, "thread names", 12)
		if err != nil {
			return nil, err
		}
		out := make([]ThreadName, n)
		for i := range out {
			e := b[start+12*i:]
			out[i].ThreadID = le.Uint32(e)
			out[i].Rva = le.Uint64(e[4:])
			if out[i].Rva != 0 && out[i].Rva < uint64(f.size) && out[i].Rva <= 0xFFFFFFFF {
				out[i].Name, _ = f.ReadString(uint32(out[i].Rva))
			}
		}
		return out, nil
	})
}

// ThreadInfo is a MINIDUMP_THREAD_INFO (ThreadInfoListStream).
type ThreadInfo struct {
	ThreadID     uint32
	DumpFlags    uint32 // ThreadInfo* flags
	DumpError    uint32
	ExitStatus   uint32
	CreateTime   uint64 // FILETIME
	ExitTime     uint64
	KernelTime   uint64
	UserTime     uint64
	StartAddress uint64
	Affinity     uint64
}

// ThreadInfo DumpFlags.
const (
	ThreadInfoErrorThread    = 0x01
	ThreadInfoWritingThread  = 0x02
	ThreadInfoExitedThread   = 0x04
	ThreadInfoInvalidInfo    = 0x08
	ThreadInfoInvalidContext = 0x10
	ThreadInfoInvalidTeb     = 0x20
)

// ThreadInfos returns the ThreadInfoListStream entries.
func (f *File) ThreadInfos() ([]ThreadInfo, error) {
	return f.threadInfo.get(func() ([]ThreadInfo, error) {
		b, off, err := f.streamBytes(ThreadInfoListStream)
		if err != nil {
			return nil, err
		}
		n, stride, start, err := tableHeader(b, off, "thread info list", 64, false)
		if err != nil {
			return nil, err
		}
		out := make([]ThreadInfo, n)
		for i := range out {
			e := b[start+i*stride:]
			out[i] = ThreadInfo{
				ThreadID: le.Uint32(e), DumpFlags: le.Uint32(e[4:]), DumpError: le.Uint32(e[8:]), ExitStatus: le.Uint32(e[12:]),
				CreateTime: le.Uint64(e[16:]), ExitTime: le.Uint64(e[24:]), KernelTime: le.Uint64(e[32:]), UserTime: le.Uint64(e[40:]),
				StartAddress: le.Uint64(e[48:]), Affinity: le.Uint64(e[56:]),
			}
		}
		return out, nil
	})
}
