package minidump

// MaxExceptionParameters is EXCEPTION_MAXIMUM_PARAMETERS.
const MaxExceptionParameters = 15

// Exception is the MINIDUMP_EXCEPTION_STREAM: the exception record of the
// crash and the crashing thread's context at the time of the exception.
type Exception struct {
	ThreadID         uint32
	Code             uint32 // ExceptionCode (NTSTATUS)
	Flags            uint32
	Record           uint64 // address of a chained EXCEPTION_RECORD
	Address          uint64 // ExceptionAddress
	NumberParameters uint32 // as stored (may exceed 15 in broken dumps)
	// Information holds min(NumberParameters, 15) ExceptionInformation values.
	Information []uint64
	Context     Location // CONTEXT of the crashing thread at the exception
}

// Exception returns the ExceptionStream.
func (f *File) Exception() (*Exception, error) {
	return f.exception.get(func() (*Exception, error) {
		b, off, err := f.streamBytes(ExceptionStream)
		if err != nil {
			return nil, err
		}
		if len(b) < 0xA8 {
			return nil, formatErr(off, "exception stream", ErrTruncated, "%d bytes, need 168", len(b))
		}
		e := &Exception{
			ThreadID:         le.Uint32(b),
			Code:             le.Uint32(b[8:]),
			Flags:            le.Uint32(b[12:]),
			Record:           le.Uint64(b[16:]),
			Address:          le.Uint64(b[24:]),
			NumberParameters: le.Uint32(b[32:]),
			Context:          Location{DataSize: le.Uint32(b[0xA0:]), Rva: le.Uint32(b[0xA4:])},
		}
		n := min(e.NumberParameters, MaxExceptionParameters)
		e.Information = make([]uint64, n)
		for i := range e.Information {
			e.Information[i] = le.Uint64(b[40+8*i:])
		}
		return e, nil
	})
}
