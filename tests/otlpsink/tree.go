package otlpsink

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Trace returns the spans of spans that belong to traceID, in their original
// order.
func Trace(spans []Span, traceID string) []Span {
	var out []Span
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// Children returns the direct children of the span parentID, ordered by
// start time (ties broken by name, then span ID).
func Children(spans []Span, parentID string) []Span {
	var out []Span
	for _, s := range spans {
		if s.ParentSpanID == parentID && parentID != "" {
			out = append(out, s)
		}
	}
	sortSpans(out)
	return out
}

// Tree renders spans as an indented parent/child tree, one span per line:
//
//	SERVER GET /orders [http.method=GET] 12.3ms
//	  CLIENT db.query [db.system=postgres] ERROR "timeout" 4.0ms
//
// Attributes are sorted by key; the status is shown unless it is UNSET.
// Roots are spans without a parent; spans whose parent is not in spans are
// also shown as roots, marked "(orphan of <id>)". Siblings are ordered by
// start time (ties broken by name, then span ID). If spans belong to more
// than one trace, each trace is rendered under a "trace <id>" header.
func Tree(spans []Span) string {
	var traceIDs []string
	byTrace := map[string][]Span{}
	for _, s := range spans {
		if _, ok := byTrace[s.TraceID]; !ok {
			traceIDs = append(traceIDs, s.TraceID)
		}
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	var b strings.Builder
	if len(traceIDs) == 1 {
		writeTrace(&b, byTrace[traceIDs[0]], "")
		return b.String()
	}
	sort.SliceStable(traceIDs, func(i, j int) bool {
		a, c := earliest(byTrace[traceIDs[i]]), earliest(byTrace[traceIDs[j]])
		if !a.Start.Equal(c.Start) {
			return a.Start.Before(c.Start)
		}
		return traceIDs[i] < traceIDs[j]
	})
	for _, id := range traceIDs {
		fmt.Fprintf(&b, "trace %s\n", id)
		writeTrace(&b, byTrace[id], "  ")
	}
	return b.String()
}

func earliest(spans []Span) Span {
	e := spans[0]
	for _, s := range spans[1:] {
		if s.Start.Before(e.Start) {
			e = s
		}
	}
	return e
}

func writeTrace(b *strings.Builder, spans []Span, indent string) {
	present := make(map[string]bool, len(spans))
	for _, s := range spans {
		present[s.SpanID] = true
	}
	var roots []Span
	for _, s := range spans {
		if s.ParentSpanID == "" || !present[s.ParentSpanID] || s.ParentSpanID == s.SpanID {
			roots = append(roots, s)
		}
	}
	sortSpans(roots)
	visited := make(map[string]bool, len(spans))
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		if visited[s.SpanID] {
			return
		}
		visited[s.SpanID] = true
		b.WriteString(indent)
		b.WriteString(strings.Repeat("  ", depth))
		b.WriteString(spanLine(s))
		if s.ParentSpanID != "" && !present[s.ParentSpanID] {
			fmt.Fprintf(b, " (orphan of %s)", s.ParentSpanID)
		}
		b.WriteByte('\n')
		for _, c := range Children(spans, s.SpanID) {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	// Anything left is part of a parent cycle; show it rather than hide it.
	rest := make([]Span, 0)
	for _, s := range spans {
		if !visited[s.SpanID] {
			rest = append(rest, s)
		}
	}
	sortSpans(rest)
	for _, s := range rest {
		walk(s, 0)
	}
}

func spanLine(s Span) string {
	var b strings.Builder
	b.WriteString(s.Kind)
	b.WriteByte(' ')
	b.WriteString(s.Name)
	if len(s.Attrs) > 0 {
		keys := make([]string, 0, len(s.Attrs))
		for k := range s.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" [")
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(formatValue(s.Attrs[k]))
		}
		b.WriteByte(']')
	}
	if s.StatusCode != "" && s.StatusCode != "UNSET" {
		b.WriteByte(' ')
		b.WriteString(s.StatusCode)
		if s.StatusMessage != "" {
			b.WriteByte(' ')
			b.WriteString(strconv.Quote(s.StatusMessage))
		}
	}
	fmt.Fprintf(&b, " %.1fms", float64(s.Duration())/float64(time.Millisecond))
	return b.String()
}

func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		if x == "" || strings.ContainsAny(x, " \t\n\"[]=") {
			return strconv.Quote(x)
		}
		return x
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatValue(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + formatValue(x[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []byte:
		return "0x" + fmt.Sprintf("%x", x)
	case nil:
		return "<nil>"
	default:
		return fmt.Sprint(x)
	}
}

func sortSpans(spans []Span) {
	sort.SliceStable(spans, func(i, j int) bool {
		a, b := spans[i], spans[j]
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.SpanID < b.SpanID
	})
}
