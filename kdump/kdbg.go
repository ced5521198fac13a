package kdump

import (
	"encoding/binary"
	"math/bits"
)

// KDBGTag is the OwnerTag of a plain (decoded) KDDEBUGGER_DATA64 block.
const KDBGTag = 0x4742444B // "KDBG"

// KDBG holds the fields of KDDEBUGGER_DATA64 that analysis uses. Offsets
// and sizes of kernel structures (the Offset* and Size* fields) are zero
// when the block is too short to hold them. The block stores 32-bit
// kernels' pointers sign-extended; File.KDBG narrows them to 32 bits, so
// they can be read through File.Memory as they are (ParseKDBG does not).
type KDBG struct {
	VA   uint64 // where the block lives in kernel memory
	Size uint32 // the header's Size field

	KernBase             uint64
	PsLoadedModuleList   uint64
	PsActiveProcessHead  uint64
	MmPfnDatabase        uint64
	NtBuildLab           uint64 // VA of the build-lab ASCII string
	KiProcessorBlock     uint64 // VA of the array of KPRCB pointers
	MmUnloadedDrivers    uint64
	MmLastUnloadedDriver uint64
	CmNtCSDVersion       uint64
	PteBase              uint64 // RS1 and later
	PaeEnabled           bool

	OffsetKThreadTeb                 uint16
	OffsetKThreadKernelStack         uint16
	OffsetKThreadInitialStack        uint16
	OffsetKThreadApcProcess          uint16
	OffsetKThreadState               uint16
	SizeEProcess                     uint16
	OffsetEprocessPeb                uint16
	OffsetEprocessParentCID          uint16
	OffsetEprocessDirectoryTableBase uint16
	SizePrcb                         uint16
	OffsetPrcbCurrentThread          uint16
	OffsetPrcbProcStateContext       uint16
	OffsetPrcbNumber                 uint16 // KPRCB.Number, the processor's index
	SizeEThread                      uint16
	OffsetPrcbContext                uint16 // Win7 and later
	OffsetKThreadStackLimit          uint32
	OffsetKThreadStackBase           uint32
	OffsetPrcbIdleThread             uint16
}

// ParseKDBG decodes a plain KDDEBUGGER_DATA64 block. b must start with the
// block header; fields beyond len(b) or the block's Size are left zero.
func ParseKDBG(b []byte, va uint64) (*KDBG, error) {
	if len(b) < 0x18 {
		return nil, formatErr(-1, "KDBG", "block of %d bytes is too short", len(b))
	}
	le := binary.LittleEndian
	if tag := le.Uint32(b[0x10:]); tag != KDBGTag {
		return nil, formatErr(-1, "KDBG", "owner tag %#x is not KDBG (the block may be encoded)", tag)
	}
	k := &KDBG{VA: va, Size: le.Uint32(b[0x14:])}
	n := min(len(b), int(k.Size))
	u64 := func(off int) uint64 {
		if off+8 > n {
			return 0
		}
		return le.Uint64(b[off:])
	}
	u16 := func(off int) uint16 {
		if off+2 > n {
			return 0
		}
		return le.Uint16(b[off:])
	}
	u32 := func(off int) uint32 {
		if off+4 > n {
			return 0
		}
		return le.Uint32(b[off:])
	}
	k.KernBase = u64(0x18)
	k.PaeEnabled = u16(0x36)&1 != 0
	k.PsLoadedModuleList = u64(0x48)
	k.PsActiveProcessHead = u64(0x50)
	k.MmPfnDatabase = u64(0xC0)
	k.NtBuildLab = u64(0x208)
	k.KiProcessorBlock = u64(0x218)
	k.MmUnloadedDrivers = u64(0x220)
	k.MmLastUnloadedDriver = u64(0x228)
	k.CmNtCSDVersion = u64(0x268)
	k.OffsetKThreadTeb = u16(0x29A)
	k.OffsetKThreadKernelStack = u16(0x29C)
	k.OffsetKThreadInitialStack = u16(0x29E)
	k.OffsetKThreadApcProcess = u16(0x2A0)
	k.OffsetKThreadState = u16(0x2A2)
	k.SizeEProcess = u16(0x2A8)
	k.OffsetEprocessPeb = u16(0x2AA)
	k.OffsetEprocessParentCID = u16(0x2AC)
	k.OffsetEprocessDirectoryTableBase = u16(0x2AE)
	k.SizePrcb = u16(0x2B0)
	k.OffsetPrcbCurrentThread = u16(0x2B4)
	k.OffsetPrcbProcStateContext = u16(0x2BC)
	k.OffsetPrcbNumber = u16(0x2BE)
	k.SizeEThread = u16(0x2C0)
	k.OffsetPrcbContext = u16(0x338)
	k.OffsetKThreadStackLimit = u32(0x340)
	k.OffsetKThreadStackBase = u32(0x344)
	k.OffsetPrcbIdleThread = u16(0x350)
	k.PteBase = u64(0x360)
	return k, nil
}

// KDBGKeys are the kernel globals that encode a KDBG block on Windows 8 and
// later x64 systems (their values, and the VA of KdpDataBlockEncoded). They
// come from the kernel's symbols.
type KDBGKeys struct {
	KiWaitNever         uint64
	KiWaitAlways        uint64
	KdpDataBlockEncoded uint64 // the VA of the variable, not its value
}

// DecodeKDBG decodes an encoded KDDEBUGGER_DATA64 block in place, one
// 64-bit word at a time, and reports whether the result carries the KDBG
// tag. Trailing bytes that do not fill a word are left alone.
func DecodeKDBG(b []byte, k KDBGKeys) bool {
	le := binary.LittleEndian
	for off := 0; off+8 <= len(b); off += 8 {
		v := le.Uint64(b[off:])
		v ^= k.KiWaitNever
		v = bits.RotateLeft64(v, int(k.KiWaitNever&0xFF))
		v ^= k.KdpDataBlockEncoded
		v = bits.ReverseBytes64(v)
		v ^= k.KiWaitAlways
		le.PutUint64(b[off:], v)
	}
	return len(b) >= 0x18 && le.Uint32(b[0x10:]) == KDBGTag
}
