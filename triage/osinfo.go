package triage

import (
	"strconv"
	"strings"

	"github.com/kdtriage/kdtriage/kdump"
)

// parseBuildLab splits an NtBuildLab string such as
// "19041.1.amd64fre.vb_release.191206-1406" into the build, the revision
// and the branch ("vb_release"). ok is false when s does not have that
// shape.
func parseBuildLab(s string) (build, rev uint32, branch string, ok bool) {
	parts := strings.Split(s, ".")
	if len(parts) < 4 {
		return 0, 0, "", false
	}
	b, err1 := strconv.ParseUint(parts[0], 10, 32)
	r, err2 := strconv.ParseUint(parts[1], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, "", false
	}
	return uint32(b), uint32(r), parts[3], true
}

// ntVersion returns the NT major.minor version of a build number.
func ntVersion(build uint32) string {
	switch {
	case build >= 10240:
		return "10.0"
	case build >= 9600:
		return "6.3"
	case build >= 9200:
		return "6.2"
	case build >= 7600:
		return "6.1"
	case build >= 6000:
		return "6.0"
	case build >= 3790:
		return "5.2"
	case build >= 2600:
		return "5.1"
	}
	return ""
}

// osName returns the marketing name of a build. server selects the server
// names (the dump header's ProductType is not 1, "workstation").
func osName(build uint32, server bool) string {
	if server {
		switch {
		case build >= 26100:
			return "Windows Server 2025"
		case build >= 20348:
			return "Windows Server 2022"
		case build >= 17763:
			return "Windows Server 2019"
		case build >= 14393:
			return "Windows Server 2016"
		case build >= 9600:
			return "Windows Server 2012 R2"
		case build >= 9200:
			return "Windows Server 2012"
		case build >= 7600:
			return "Windows Server 2008 R2"
		case build >= 6000:
			return "Windows Server 2008"
		}
		return "Windows Server"
	}
	switch {
	case build >= 22000:
		return "Windows 11"
	case build >= 10240:
		return "Windows 10"
	case build >= 9600:
		return "Windows 8.1"
	case build >= 9200:
		return "Windows 8"
	case build >= 7600:
		return "Windows 7"
	case build >= 6000:
		return "Windows Vista"
	case build >= 2600:
		return "Windows XP"
	case build == 0:
		return "Windows"
	}
	return "Windows"
}

// productTypeName names the header's ProductType (NT_PRODUCT_TYPE).
func productTypeName(v uint32) string {
	switch v {
	case 1:
		return "workstation"
	case 2:
		return "domain_controller"
	case 3:
		return "server"
	}
	return ""
}

// osInfo builds OSInfo from the header and, when readable, the KDBG's
// NtBuildLab string.
func osInfo(f *kdump.File, buildLab string) OSInfo {
	h := f.Header()
	o := OSInfo{Build: h.MinorVersion, Platform: h.Machine.String(), BuildLab: buildLab}
	rev := uint32(0)
	if b, r, branch, ok := parseBuildLab(buildLab); ok && b == h.MinorVersion {
		rev, o.Branch = r, branch
	}
	if h.ProductTypeSet {
		o.ProductType = productTypeName(h.ProductType)
	}
	if v := ntVersion(o.Build); v != "" {
		o.Version = v + "." + strconv.FormatUint(uint64(o.Build), 10) + "." + strconv.FormatUint(uint64(rev), 10)
	}
	o.Name = osName(o.Build, h.ProductTypeSet && h.ProductType > 1)
	return o
}

// readBuildLab reads the kernel's NtBuildLab string through the KDBG.
func readBuildLab(f *kdump.File) string {
	k, err := f.KDBG()
	if err != nil || k.NtBuildLab == 0 {
		return ""
	}
	var b [128]byte
	n, _ := f.Memory().ReadVirtual(b[:], k.NtBuildLab)
	return printable(b[:n])
}

// printable returns the text of b up to the first NUL, or "" when it holds
// anything but printable ASCII.
func printable(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
		if c < 0x20 || c > 0x7E {
			return ""
		}
	}
	return ""
}

// cleanName keeps the printable ASCII prefix of a name from the dump
// (unloaded-driver names are fixed-size buffers that may hold garbage
// after the text).
func cleanName(s string) string {
	for i, c := range s {
		if c < 0x20 || c > 0x7E {
			return s[:i]
		}
	}
	return s
}
