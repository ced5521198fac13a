package triage_test

import (
	"fmt"

	"github.com/kdtriage/kdtriage/triage"
)

// The FAILURE_ID_HASH of a bucket is the one WinDbg prints for it.
func ExampleFailureIDHash() {
	fmt.Println(triage.FailureIDHash(triage.SourceKernel, "AV_myfault!unknown_function"))
	fmt.Println(triage.FailureIDHashString(triage.SourceKernel, "AV_myfault!unknown_function"))
	// Output:
	// {9745090a-9bce-ccba-c096-ca6e9ca04c64}
	// km:av_myfault!unknown_function
}
