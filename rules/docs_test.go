package rules

import (
	"os"
	"strings"
	"testing"
)

// TestDocExamplesLoad keeps the YAML examples of docs/rules.md valid.
func TestDocExamplesLoad(t *testing.T) {
	data, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Skipf("docs/rules.md not found: %v", err)
	}
	blocks := strings.Split(string(data), "```yaml\n")
	if len(blocks) < 3 {
		t.Fatalf("found %d YAML examples, want at least 2", len(blocks)-1)
	}
	for i, b := range blocks[1:] {
		src, _, ok := strings.Cut(b, "```")
		if !ok {
			t.Fatalf("example %d is not closed", i+1)
		}
		if strings.HasPrefix(src, "cases:") {
			if _, err := ParseCases("rules.md", []byte(src), ""); err != nil {
				t.Errorf("cases example %d: %v\n%s", i+1, err, src)
			}
			continue
		}
		if _, err := Parse("rules.md", []byte(src)); err != nil {
			t.Errorf("example %d: %v\n%s", i+1, err, src)
		}
	}
}
