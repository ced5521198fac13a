package stack_test

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/triage/stack"
)

// ExampleWalk walks the faulting stack of a kernel dump with the images
// found in the dump itself and, for the others, in a local directory.
// Frame.Module and Frame.LookupOffset are what a symbolizer needs. (The
// example is compiled, not run: it needs a dump.)
func ExampleWalk() {
	d, err := kdump.Open(filepath.Join("testdata", "MEMORY.DMP"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	mods, _ := d.Modules()
	ctx, _ := d.Context()
	frames, err := stack.Walk(context.Background(), stack.Input{
		Context: ctx,
		Memory:  d.Memory(),
		Modules: mods,
		Images:  stack.ImagesChain{stack.MemoryImages{Memory: d.Memory()}, stack.DirImages{Dir: "images"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, f := range frames {
		fmt.Printf("%02d %s rva %#x\n", i, f, f.LookupOffset())
	}
}
