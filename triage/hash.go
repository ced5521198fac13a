package triage

import (
	"crypto/md5"
	"encoding/binary"
	"strings"
	"unicode/utf16"
)

// Analysis sources: the prefix WinDbg puts before the bucket when it
// hashes it (the old ANALYSIS_SOURCE field, lower-cased).
const (
	SourceKernel = "km" // kernel-mode dumps (bug checks)
	SourceUser   = "um" // user-mode dumps (application crashes)
)

// FailureIDHashString returns WinDbg's FAILURE_ID_HASH_STRING: the analysis
// source, a colon and the bucket, all in lower case ("km:av_myfault!unknown_function").
func FailureIDHashString(source, bucket string) string {
	return strings.ToLower(source + ":" + bucket)
}

// FailureIDHash returns the FAILURE_ID_HASH WinDbg prints for a bucket: the
// MD5 of the UTF-16LE encoding of FailureIDHashString, formatted as a GUID
// whose first three groups are read little-endian, in braces and lower
// case, e.g. {9745090a-9bce-ccba-c096-ca6e9ca04c64} for source "km" and
// bucket "AV_myfault!unknown_function".
func FailureIDHash(source, bucket string) string {
	s := FailureIDHashString(source, bucket)
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return formatGUIDLE(md5.Sum(b))
}

// formatGUIDLE formats 16 bytes as a Windows GUID in memory order: Data1,
// Data2 and Data3 little-endian, Data4 as bytes.
func formatGUIDLE(h [16]byte) string {
	const hexd = "0123456789abcdef"
	order := [...]int{3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15}
	out := make([]byte, 0, 38)
	out = append(out, '{')
	for _, i := range order {
		if i < 0 {
			out = append(out, '-')
			continue
		}
		out = append(out, hexd[h[i]>>4], hexd[h[i]&0xF])
	}
	return string(append(out, '}'))
}
