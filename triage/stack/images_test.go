package stack

import (
	"context"
	"errors"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
)

// TestDirImagesNames: module names from dumps are often full paths (user
// mode, \SystemRoot\... in kernel lists); DirImages looks the base name up
// in its directory and never anything outside it.
func TestDirImagesNames(t *testing.T) {
	f, _ := loadDriver(t)
	m := kdump.Module{Base: drvBase, Size: f.OptionalHeader.SizeOfImage, TimeDateStamp: f.TimeDateStamp}
	d := DirImages{Dir: driverDir}
	for _, name := range []string{"kdtdrv.sys", `\SystemRoot\system32\drivers\kdtdrv.sys`, `C:\Windows\kdtdrv.sys`, "/opt/drv/kdtdrv.sys"} {
		m.Name = name
		img, err := d.Image(context.Background(), m)
		if err != nil || img == nil || img.TimeDateStamp != f.TimeDateStamp {
			t.Errorf("%s: %v, %v", name, img, err)
		}
	}
	for _, name := range []string{"", ".", "..", `kdtdrv.sys\`, "nul", "a\x00b", `..\..\..\testdata\drivers\..`} {
		m.Name = name
		if img, err := d.Image(context.Background(), m); !errors.Is(err, ErrNoImage) {
			t.Errorf("%q: %v, %v; want ErrNoImage", name, img, err)
		}
	}
}
