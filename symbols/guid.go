package symbols

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is a Windows GUID in its structured form: Data1, Data2 and Data3 are
// integers (stored little-endian on disk, e.g. in a CodeView RSDS record or a
// PDB info stream) and Data4 is eight bytes in order.
type GUID struct {
	Data1 uint32
	Data2 uint16
	Data3 uint16
	Data4 [8]byte
}

// GUIDFromBytes decodes the 16-byte on-disk (little-endian) layout used by
// RSDS records and PDB streams. It fails unless b holds at least 16 bytes;
// extra bytes are ignored.
func GUIDFromBytes(b []byte) (GUID, error) {
	if len(b) < 16 {
		return GUID{}, fmt.Errorf("symbols: GUID needs 16 bytes, have %d", len(b))
	}
	var g GUID
	g.Data1 = binary.LittleEndian.Uint32(b[0:4])
	g.Data2 = binary.LittleEndian.Uint16(b[4:6])
	g.Data3 = binary.LittleEndian.Uint16(b[6:8])
	copy(g.Data4[:], b[8:16])
	return g, nil
}

// Bytes returns the 16-byte on-disk (little-endian) layout of g, the inverse
// of GUIDFromBytes.
func (g GUID) Bytes() [16]byte {
	var b [16]byte
	binary.LittleEndian.PutUint32(b[0:4], g.Data1)
	binary.LittleEndian.PutUint16(b[4:6], g.Data2)
	binary.LittleEndian.PutUint16(b[6:8], g.Data3)
	copy(b[8:], g.Data4[:])
	return b
}

// IsZero reports whether g is the all-zero GUID.
func (g GUID) IsZero() bool { return g == GUID{} }

// String returns g in registry format with braces and uppercase hex digits:
// {3844DBB9-2017-4967-BE7A-A4A2C20430FA}.
func (g GUID) String() string {
	return "{" + g.Dashed() + "}"
}

// Dashed returns g as 8-4-4-4-12 uppercase hex digits without braces.
func (g GUID) Dashed() string {
	return fmt.Sprintf("%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		g.Data1, g.Data2, g.Data3, g.Data4[0], g.Data4[1],
		g.Data4[2], g.Data4[3], g.Data4[4], g.Data4[5], g.Data4[6], g.Data4[7])
}

// Hex returns g as 32 uppercase hex digits in Data1, Data2, Data3, Data4
// order, the form symbol-server keys use (without the age).
func (g GUID) Hex() string {
	return fmt.Sprintf("%08X%04X%04X%s", g.Data1, g.Data2, g.Data3, strings.ToUpper(hex.EncodeToString(g.Data4[:])))
}

// MarshalText implements encoding.TextMarshaler with the registry format.
func (g GUID) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; it accepts every form
// ParseGUID accepts.
func (g *GUID) UnmarshalText(b []byte) error {
	v, err := ParseGUID(string(b))
	if err != nil {
		return err
	}
	*g = v
	return nil
}

// ParseGUID parses a GUID written as 32 hex digits, optionally with the
// 8-4-4-4-12 dashes and optionally in braces, in either case:
// "{3844dbb9-2017-4967-be7a-a4a2c20430fa}", "3844DBB920174967BE7AA4A2C20430FA".
func ParseGUID(s string) (GUID, error) {
	t := s
	if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
		t = t[1 : len(t)-1]
	}
	if len(t) == 36 {
		if t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-' {
			return GUID{}, fmt.Errorf("symbols: malformed GUID %q", s)
		}
		t = t[0:8] + t[9:13] + t[14:18] + t[19:23] + t[24:]
	}
	if len(t) != 32 {
		return GUID{}, fmt.Errorf("symbols: malformed GUID %q: want 32 hex digits", s)
	}
	raw, err := hex.DecodeString(t)
	if err != nil {
		return GUID{}, fmt.Errorf("symbols: malformed GUID %q: %v", s, err)
	}
	var g GUID
	g.Data1 = binary.BigEndian.Uint32(raw[0:4])
	g.Data2 = binary.BigEndian.Uint16(raw[4:6])
	g.Data3 = binary.BigEndian.Uint16(raw[6:8])
	copy(g.Data4[:], raw[8:16])
	return g, nil
}
