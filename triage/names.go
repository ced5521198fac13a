package triage

import (
	"strings"

	"github.com/kdtriage/kdtriage/kdump"
)

// moduleName returns the name the debugger gives a kernel module: nt for
// every kernel image, hal for every HAL, otherwise the file name without
// its extension (amdppm.sys -> amdppm).
func moduleName(image string) string {
	l := strings.ToLower(image)
	switch l {
	case "ntoskrnl.exe", "ntkrnlmp.exe", "ntkrnlpa.exe", "ntkrpamp.exe":
		return "nt"
	case "hal.dll", "halmacpi.dll", "halacpi.dll", "halaacpi.dll":
		return "hal"
	}
	if i := strings.LastIndexByte(image, '.'); i > 0 {
		return image[:i]
	}
	return image
}

// imageName returns the IMAGE_NAME of a module: the kernel's original file
// name is ntkrnlmp.exe on 64-bit systems (and ntkrpamp.exe on 32-bit PAE
// ones), whatever the loader list calls it.
func imageName(m *kdump.Module, machine kdump.Machine, pae bool) string {
	if moduleName(m.Name) == "nt" {
		switch {
		case machine.PointerSize() == 8:
			return "ntkrnlmp.exe"
		case pae:
			return "ntkrpamp.exe"
		}
		return "ntkrnlmp.exe"
	}
	return m.Name
}

// isKernelOrHAL reports whether a debugger module name is nt or hal.
func isKernelOrHAL(module string) bool { return module == "nt" || module == "hal" }
