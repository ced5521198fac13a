package triage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// validate checks v against the subset of JSON Schema that
// docs/report.schema.json uses: type, const, enum, pattern, minLength,
// required, properties, additionalProperties, items, minItems, maxItems
// and local $ref.
func validate(root, s map[string]any, v any, path string) []string {
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/$defs/")
		def, ok := root["$defs"].(map[string]any)[name].(map[string]any)
		if !ok {
			return []string{path + ": unresolved $ref " + ref}
		}
		return validate(root, def, v, path)
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if t, ok := s["type"].(string); ok {
		okType := false
		switch t {
		case "object":
			_, okType = v.(map[string]any)
		case "array":
			_, okType = v.([]any)
		case "string":
			_, okType = v.(string)
		case "integer":
			f, isNum := v.(float64)
			okType = isNum && f == float64(int64(f))
		case "boolean":
			_, okType = v.(bool)
		}
		if !okType {
			bad("is %T, want %s", v, t)
			return errs
		}
	}
	if c, ok := s["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		bad("is %v, want %v", v, c)
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, x := range e {
			if x == v {
				found = true
			}
		}
		if !found {
			bad("%v is not one of %v", v, e)
		}
	}
	if str, ok := v.(string); ok {
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			bad("%q does not match %s", str, p)
		}
		if n, ok := s["minLength"].(float64); ok && len(str) < int(n) {
			bad("shorter than %v", n)
		}
	}
	if arr, ok := v.([]any); ok {
		if n, ok := s["minItems"].(float64); ok && len(arr) < int(n) {
			bad("%d items, want at least %v", len(arr), n)
		}
		if n, ok := s["maxItems"].(float64); ok && len(arr) > int(n) {
			bad("%d items, want at most %v", len(arr), n)
		}
		if it, ok := s["items"].(map[string]any); ok {
			for i, x := range arr {
				errs = append(errs, validate(root, it, x, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := obj[r.(string)]; !ok {
					bad("missing required %q", r)
				}
			}
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, validate(root, ps, obj[k], path+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					bad("property %q is not in the schema", k)
				}
			case map[string]any:
				errs = append(errs, validate(root, ap, obj[k], path+"."+k)...)
			}
		}
	}
	return errs
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "report.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReportSchema validates every golden JSON report and freshly made
// reports (with host metadata and a rule-set override) against the
// documented schema, so the documentation cannot drift from the code.
func TestReportSchema(t *testing.T) {
	schema := loadSchema(t)
	check := func(name string, b []byte) {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, e := range validate(schema, schema, v, "$") {
			t.Errorf("%s: %s", name, e)
		}
	}
	golden, _ := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if len(golden) == 0 {
		t.Fatal("no golden JSON reports")
	}
	for _, g := range golden {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		check(filepath.Base(g), b)
	}
	for _, c := range syntheticCases() {
		rep := synthetic(t, c.spec, Options{Host: &HostInfo{Hostname: "pc-17", Tenant: "acme", Labels: map[string]string{"site": "lab"}},
			Source: SourceInfo{File: "x.dmp", Size: 1, SHA256: strings.Repeat("ab", 32)}, LegacyBucket: true})
		var buf bytes.Buffer
		if err := rep.WriteJSON(&buf, false); err != nil {
			t.Fatal(err)
		}
		check(c.name, buf.Bytes())
	}
	// The exception object is described field by field: an unknown field
	// or access type is caught.
	exc := schema["properties"].(map[string]any)["exception"].(map[string]any)
	bad := map[string]any{"code": "0xc0000005", "name": "", "flags": "0x0", "address": "0x1", "number_parameters": 2.0,
		"params": []any{"0x1", "0x0"}, "thread_id": 1.0, "reason": "", "crash_address": "0x0", "class": "NULL_POINTER_READ",
		"access": "sideways", "extra": 1.0}
	if errs := validate(schema, exc, bad, "$.exception"); len(errs) != 2 {
		t.Errorf("exception schema: %d errors, want 2 (access, extra): %v", len(errs), errs)
	}
	// A report that breaks the schema is caught.
	if errs := validate(schema, schema, map[string]any{"schema_version": 2.0}, "$"); len(errs) < 5 {
		t.Errorf("validator accepted a broken report: %v", errs)
	}
}
