package minidump

import (
	"encoding/binary"
	"fmt"
)

// SystemInfo is MINIDUMP_SYSTEM_INFO with its CSD version string read.
type SystemInfo struct {
	ProcessorArchitecture ProcessorArch
	ProcessorLevel        uint16
	ProcessorRevision     uint16
	NumberOfProcessors    uint8
	ProductType           uint8 // 1 workstation, 2 domain controller, 3 server
	MajorVersion          uint32
	MinorVersion          uint32
	BuildNumber           uint32
	PlatformID            Platform
	CSDVersionRva         uint32
	SuiteMask             uint16
	CSDVersion            string // e.g. "Service Pack 1"; on Linux, the kernel version

	// CPU is the raw CPU_INFORMATION union (24 bytes).
	CPU [24]byte

	// Problems lists what could not be read (the CSD version string).
	Problems []error
}

// IsX86 reports whether the CPU union holds X86CpuInfo.
func (s *SystemInfo) IsX86() bool {
	return s.ProcessorArchitecture == ArchX86 || s.ProcessorArchitecture == ArchIA32OnWin64
}

// VendorID returns the x86 CPUID vendor words (x86 only).
func (s *SystemInfo) VendorID() [3]uint32 {
	return [3]uint32{le.Uint32(s.CPU[0:]), le.Uint32(s.CPU[4:]), le.Uint32(s.CPU[8:])}
}

// VersionInformation returns CPUID(1).EAX (x86 only).
func (s *SystemInfo) VersionInformation() uint32 { return le.Uint32(s.CPU[12:]) }

// FeatureInformation returns CPUID(1).EDX (x86 only).
func (s *SystemInfo) FeatureInformation() uint32 { return le.Uint32(s.CPU[16:]) }

// AMDExtendedCPUFeatures returns CPUID(0x80000001).EBX (x86 only).
func (s *SystemInfo) AMDExtendedCPUFeatures() uint32 { return le.Uint32(s.CPU[20:]) }

// ProcessorFeatures returns the two feature words of non-x86 CPUs.
func (s *SystemInfo) ProcessorFeatures() [2]uint64 {
	return [2]uint64{le.Uint64(s.CPU[0:]), le.Uint64(s.CPU[8:])}
}

// CPUVendor returns the CPUID vendor string (e.g. "GenuineIntel") on x86,
// or "" for other architectures and empty vendor words.
func (s *SystemInfo) CPUVendor() string {
	if !s.IsX86() {
		return ""
	}
	var b [12]byte
	for i, w := range s.VendorID() {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return cString(b[:])
}

// OSVersion returns "major.minor.build".
func (s *SystemInfo) OSVersion() string {
	return fmt.Sprintf("%d.%d.%d", s.MajorVersion, s.MinorVersion, s.BuildNumber)
}

// SystemInfo returns the SystemInfoStream.
func (f *File) SystemInfo() (*SystemInfo, error) {
	return f.sysInfo.get(func() (*SystemInfo, error) {
		b, off, err := f.streamBytes(SystemInfoStream)
		if err != nil {
			return nil, err
		}
		if len(b) < 56 {
			return nil, formatErr(off, "system info", ErrTruncated, "%d bytes, need 56", len(b))
		}
		s := &SystemInfo{
			ProcessorArchitecture: ProcessorArch(le.Uint16(b)),
			ProcessorLevel:        le.Uint16(b[2:]),
			ProcessorRevision:     le.Uint16(b[4:]),
			NumberOfProcessors:    b[6],
			ProductType:           b[7],
			MajorVersion:          le.Uint32(b[8:]),
			MinorVersion:          le.Uint32(b[12:]),
			BuildNumber:           le.Uint32(b[16:]),
			PlatformID:            Platform(le.Uint32(b[20:])),
			CSDVersionRva:         le.Uint32(b[24:]),
			SuiteMask:             le.Uint16(b[28:]),
		}
		copy(s.CPU[:], b[32:56])
		if s.CSDVersionRva != 0 {
			// A CSD string that cannot be read is left empty: the rest of
			// the stream is still good.
			var err error
			if s.CSDVersion, err = f.ReadString(s.CSDVersionRva); err != nil {
				s.Problems = append(s.Problems, err)
			}
		}
		return s, nil
	})
}
