package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/otlpsink"
)

func TestPrintTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	t0 := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	spans := []otlpsink.Span{
		{TraceID: "aa", SpanID: "1", Name: "GET default", Kind: "CLIENT", Start: t0, End: t0.Add(10 * time.Millisecond), Attrs: map[string]any{"url.path": "/a", "noise": 1}},
		{TraceID: "aa", SpanID: "2", ParentSpanID: "1", Name: "GET", Kind: "SERVER", Start: t0.Add(time.Millisecond), End: t0.Add(9 * time.Millisecond), Attrs: map[string]any{"weft.node": "n1"}},
		{TraceID: "bb", SpanID: "3", Name: "older", Kind: "CLIENT", Start: t0.Add(-time.Hour), End: t0.Add(-time.Hour)},
	}
	var buf bytes.Buffer
	for _, s := range spans {
		b, _ := json.Marshal(s)
		buf.Write(append(b, '\n'))
	}
	buf.WriteString("{half a line\n")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printTrace(&out, path, "", strings.Split(defaultTraceAttrs, ",")); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"trace aa: 2 spans", "CLIENT GET default [url.path=/a]", "  SERVER GET [weft.node=n1]"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "noise") || strings.Contains(got, "older") {
		t.Errorf("output shows a filtered attribute or another trace:\n%s", got)
	}
	out.Reset()
	if err := printTrace(&out, path, "bb", nil); err != nil || !strings.Contains(out.String(), "older") {
		t.Errorf("trace bb: %v\n%s", err, out.String())
	}
	if err := printTrace(&out, path, "zz", nil); err == nil {
		t.Error("an unknown trace gave no error")
	}
	if err := printTrace(&out, filepath.Join(t.TempDir(), "none"), "", nil); err == nil || !strings.Contains(err.Error(), "--tracing") {
		t.Errorf("a missing file: %v", err)
	}
}
