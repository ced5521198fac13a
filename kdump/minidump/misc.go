package minidump

// MiscInfo flags (Flags1).
const (
	MiscInfoProcessID           = 0x001
	MiscInfoProcessTimes        = 0x002
	MiscInfoProcessorPowerInfo  = 0x004
	MiscInfoProcessIntegrity    = 0x010
	MiscInfoProcessExecuteFlags = 0x020
	MiscInfoTimezone            = 0x040
	MiscInfoProtectedProcess    = 0x080
	MiscInfoBuildString         = 0x100
	MiscInfoProcessCookie       = 0x200
)

// Sizes of the MINIDUMP_MISC_INFO versions.
const (
	MiscInfoSize1 = 24
	MiscInfoSize2 = 44
	MiscInfoSize3 = 232
	MiscInfoSize4 = 832
	MiscInfoSize5 = 1364
)

// SystemTime is a SYSTEMTIME.
type SystemTime struct {
	Year, Month, DayOfWeek, Day, Hour, Minute, Second, Milliseconds uint16
}

// TimeZoneInformation is TIME_ZONE_INFORMATION.
type TimeZoneInformation struct {
	Bias         int32
	StandardName string
	StandardDate SystemTime
	StandardBias int32
	DaylightName string
	DaylightDate SystemTime
	DaylightBias int32
}

// XStateFeature is one XSTATE_FEATURE: where a feature's state lives in an
// extended context.
type XStateFeature struct {
	Offset, Size uint32
}

// XStateConfig is XSTATE_CONFIG_FEATURE_MSC_INFO.
type XStateConfig struct {
	SizeOfInfo      uint32
	ContextSize     uint32
	EnabledFeatures uint64
	Features        [64]XStateFeature
}

// MiscInfo is MINIDUMP_MISC_INFO through MINIDUMP_MISC_INFO_5; Version says
// which fields were present (by SizeOfInfo) and Flags1 which are valid.
type MiscInfo struct {
	SizeOfInfo uint32
	Version    int // 1..5
	Flags1     uint32

	ProcessID         uint32
	ProcessCreateTime uint32 // time_t
	ProcessUserTime   uint32 // seconds
	ProcessKernelTime uint32

	// Version 2.
	ProcessorMaxMhz, ProcessorCurrentMhz, ProcessorMhzLimit, ProcessorMaxIdleState, ProcessorCurrentIdleState uint32

	// Version 3.
	ProcessIntegrityLevel uint32
	ProcessExecuteFlags   uint32
	ProtectedProcess      uint32
	TimeZoneID            uint32
	TimeZone              TimeZoneInformation

	// Version 4.
	BuildString string
	DbgBldStr   string

	// Version 5.
	XState        XStateConfig
	ProcessCookie uint32
}

func parseSystemTime(b []byte) SystemTime {
	return SystemTime{le.Uint16(b), le.Uint16(b[2:]), le.Uint16(b[4:]), le.Uint16(b[6:]),
		le.Uint16(b[8:]), le.Uint16(b[10:]), le.Uint16(b[12:]), le.Uint16(b[14:])}
}

// MiscInfo returns the MiscInfoStream.
func (f *File) MiscInfo() (*MiscInfo, error) {
	return f.miscInfo.get(func() (*MiscInfo, error) {
		b, off, err := f.streamBytes(MiscInfoStream)
		if err != nil {
			return nil, err
		}
		if len(b) < MiscInfoSize1 {
			return nil, formatErr(off, "misc info", ErrTruncated, "%d bytes, need %d", len(b), MiscInfoSize1)
		}
		m := &MiscInfo{SizeOfInfo: le.Uint32(b), Flags1: le.Uint32(b[4:])}
		size := min(int(m.SizeOfInfo), len(b))
		if size < MiscInfoSize1 {
			return nil, formatErr(off, "misc info", ErrTruncated, "SizeOfInfo %d", m.SizeOfInfo)
		}
		m.Version = 1
		m.ProcessID = le.Uint32(b[8:])
		m.ProcessCreateTime = le.Uint32(b[12:])
		m.ProcessUserTime = le.Uint32(b[16:])
		m.ProcessKernelTime = le.Uint32(b[20:])
		if size >= MiscInfoSize2 {
			m.Version = 2
			m.ProcessorMaxMhz = le.Uint32(b[24:])
			m.ProcessorCurrentMhz = le.Uint32(b[28:])
			m.ProcessorMhzLimit = le.Uint32(b[32:])
			m.ProcessorMaxIdleState = le.Uint32(b[36:])
			m.ProcessorCurrentIdleState = le.Uint32(b[40:])
		}
		if size >= MiscInfoSize3 {
			m.Version = 3
			m.ProcessIntegrityLevel = le.Uint32(b[44:])
			m.ProcessExecuteFlags = le.Uint32(b[48:])
			m.ProtectedProcess = le.Uint32(b[52:])
			m.TimeZoneID = le.Uint32(b[56:])
			tz := b[60:]
			m.TimeZone = TimeZoneInformation{
				Bias:         int32(le.Uint32(tz)),
				StandardName: utf16String(tz[4:68]),
				StandardDate: parseSystemTime(tz[68:]),
				StandardBias: int32(le.Uint32(tz[84:])),
				DaylightName: utf16String(tz[88:152]),
				DaylightDate: parseSystemTime(tz[152:]),
				DaylightBias: int32(le.Uint32(tz[168:])),
			}
		}
		if size >= MiscInfoSize4 {
			m.Version = 4
			m.BuildString = utf16String(b[0xE8 : 0xE8+520])
			m.DbgBldStr = utf16String(b[0x2F0 : 0x2F0+80])
		}
		if size >= MiscInfoSize5 {
			m.Version = 5
			x := b[0x340:]
			m.XState.SizeOfInfo = le.Uint32(x)
			m.XState.ContextSize = le.Uint32(x[4:])
			m.XState.EnabledFeatures = le.Uint64(x[8:])
			for i := range m.XState.Features {
				m.XState.Features[i] = XStateFeature{Offset: le.Uint32(x[16+8*i:]), Size: le.Uint32(x[20+8*i:])}
			}
			m.ProcessCookie = le.Uint32(b[0x550:])
		}
		return m, nil
	})
}
