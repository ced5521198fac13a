package triage

import "testing"

// The eight bucket/hash pairs published in real !analyze -v outputs
// (analyze-semantics §1.3).
func TestFailureIDHashPublishedPairs(t *testing.T) {
	cases := []struct{ bucket, hash string }{
		{"AV_OVSExt!OvsWaitEventIoctl", "{07550bfb-c3b5-0412-b95d-f89a5c4671a9}"},
		{"AV_myfault!unknown_function", "{9745090a-9bce-ccba-c096-ca6e9ca04c64}"},
		{"0x9F_3_RtsPer_IMAGE_pci.sys", "{ce555a86-e2a6-4bdd-cc96-f64b1a03e85a}"},
		{"AV_CODE_AV_PAGED_IP_TestDriver!AccessPageableMemory", "{2463ca34-5d68-cb7c-6807-dd2087a41e36}"},
		{"AV_fileinfo!FIPfFileFSOpPostCreate", "{b4048e5d-9388-9a34-9958-ec36d87bbe12}"},
		{"AV_o2micro_sdhost!unknown_function", "{675c0c01-465e-ed53-efc7-4c82b345b89c}"},
		{"0x3B_C0000006_VRF_nt!HvpGetCellPaged", "{7a661e2f-534d-3e96-ba17-ba22422da673}"},
		{"0x124_16_GenuineIntel__UNKNOWN_IMAGE_GenuineIntel.sys", "{37af9407-4a3e-0b08-acdd-dadffdc34c3c}"},
	}
	for _, c := range cases {
		if got := FailureIDHash(SourceKernel, c.bucket); got != c.hash {
			t.Errorf("FailureIDHash(km, %q) = %s, want %s", c.bucket, got, c.hash)
		}
	}
}

func TestFailureIDHashCaseInsensitive(t *testing.T) {
	a := FailureIDHash(SourceKernel, "AV_MyFault!Unknown_Function")
	b := FailureIDHash(SourceKernel, "av_myfault!unknown_function")
	if a != b {
		t.Errorf("hash depends on case: %s vs %s", a, b)
	}
	if FailureIDHash(SourceUser, "AV_myfault!unknown_function") == a {
		t.Error("um: and km: hashes of the same bucket are equal")
	}
	if got, want := FailureIDHashString("KM", "AV_OVSExt!OvsWaitEventIoctl"), "km:av_ovsext!ovswaiteventioctl"; got != want {
		t.Errorf("FailureIDHashString = %q, want %q", got, want)
	}
}
