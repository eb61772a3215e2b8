package chart

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// valueKey is one key line of values.yaml.
type valueKey struct {
	path       string // dotted path, e.g. controlPlane.image.tag
	line       int
	documented bool // a comment block starting with "# --" sits right above it
	covered    bool // an ancestor is documented, so this is part of its default
	parent     bool // the next key line is nested under it
}

var keyLine = regexp.MustCompile(`^(\s*)([A-Za-z0-9_./-]+):(\s|$)`)

// readValueKeys parses the chart's values.yaml line by line: the chart
// keeps it in plain block style (no flow maps spanning lines, no anchors),
// which is what makes this simple parse enough.
func readValueKeys(t *testing.T) []*valueKey {
	t.Helper()
	f, err := os.Open(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type frame struct {
		indent int
		key    *valueKey
	}
	var (
		keys       []*valueKey
		stack      []frame
		commentTop string // first line of the comment block right above
		inComment  bool
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			inComment, commentTop = false, ""
			continue
		case strings.HasPrefix(trimmed, "#"):
			if !inComment {
				inComment, commentTop = true, trimmed
			}
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		documented := inComment && strings.HasPrefix(commentTop, "# --")
		inComment, commentTop = false, ""
		if m == nil || strings.HasPrefix(trimmed, "-") {
			continue // a list item or a continuation: part of its key's value
		}
		indent := len(m[1])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		var parts []string
		covered := false
		for _, fr := range stack {
			parts = append(parts, lastSegment(fr.key.path))
			covered = covered || fr.key.documented || fr.key.covered
		}
		if len(stack) > 0 {
			stack[len(stack)-1].key.parent = true
		}
		k := &valueKey{path: strings.Join(append(parts, m[2]), "."), line: n, documented: documented, covered: covered}
		keys = append(keys, k)
		stack = append(stack, frame{indent, k})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("values.yaml: no keys found")
	}
	return keys
}

func lastSegment(p string) string { return p[strings.LastIndex(p, ".")+1:] }

// TestValuesDocumented: every value in values.yaml has a "# --" comment,
// either on itself or on the map it belongs to (resources, tolerations...).
func TestValuesDocumented(t *testing.T) {
	for _, k := range readValueKeys(t) {
		if !k.documented && !k.covered && !k.parent {
			t.Errorf("values.yaml:%d: %s has no \"# --\" comment above it", k.line, k.path)
		}
	}
}

// TestREADMEValuesTable: the README's values table lists every documented
// key of values.yaml, and nothing that is not in values.yaml.
func TestREADMEValuesTable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Za-z0-9_.]+)` \\|")
	inREADME := map[string]bool{}
	_, table, ok := strings.Cut(string(readme), "\n## Values\n")
	if !ok {
		t.Fatal("README.md: no \"## Values\" section")
	}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		inREADME[m[1]] = true
	}
	inValues := map[string]bool{}
	for _, k := range readValueKeys(t) {
		inValues[k.path] = true
		if k.documented && !inREADME[k.path] {
			t.Errorf("values.yaml:%d: %s is missing from the README values table", k.line, k.path)
		}
	}
	for k := range inREADME {
		if !inValues[k] {
			t.Errorf("README values table lists %s, which values.yaml does not have", k)
		}
	}
}
