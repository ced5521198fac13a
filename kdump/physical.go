package kdump

// PhysicalMemory reads physical pages from a dump that stores them.
type PhysicalMemory interface {
	// ReadPhysical reads len(p) bytes at physical address addr.
	ReadPhysical(p []byte, addr uint64) (n int, err error)
}

// initPhysical builds f.phys and f.mem for DumpType 1, 5, 6, 8, 9 and 0xA.
func (f *File) initPhysical() error {
	return formatErr(-1, "physical memory", "%v dumps are not read yet", f.hdr.DumpType).wrap(ErrUnsupported)
}

func (f *File) kernelModules() ([]Module, error)                         { return nil, ErrUnsupported }
func (f *File) kernelUnloadedModules() ([]UnloadedModule, error)         { return nil, ErrUnsupported }
func (f *File) kernelKDBG() (*KDBG, error)                               { return nil, ErrUnsupported }
func (f *File) kernelCurrentThread() (thread, process uint64, err error) { return 0, 0, ErrUnsupported }
