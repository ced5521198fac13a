package rules

import "testing"

func TestDefaultLoads(t *testing.T) {
	s, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Code: 0x1000007E, Kind: KindKernel, Frames: []Frame{
		{Module: "nt", Function: "KeBugCheckEx"},
		{Module: "nt", Function: "KiBugCheckDispatch"},
		{Module: "nt", Function: "KiSegmentNotPresentFault"},
		{Module: "amdppm", Function: "WriteIoMemRawEx", Offset: 0x112},
		{Module: "Wdf01000", Function: "FxPkgPnp::Foo"},
		{Module: "nt", Function: "PnpStartDevice"},
	}}
	res := s.Match(in)
	for i, d := range res.Frames {
		t.Logf("%d %s %+v", i, in.Frames[i], d)
	}
	t.Logf("%+v", res)
	if res.Blame != 3 {
		t.Fatalf("blame %d", res.Blame)
	}
}
