package docs

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const metricsPage = "docs/reference/metrics.md"

// A registeredMetric is a weft_* metric the Go source defines.
type registeredMetric struct {
	typ   string // counter, gauge, histogram, summary; "" for a Desc (typed when collected)
	where string // file:line
}

// optsTypes maps the client_golang options types to metric types.
var optsTypes = map[string]string{
	"CounterOpts": "counter", "GaugeOpts": "gauge", "HistogramOpts": "histogram", "SummaryOpts": "summary",
}

// registeredMetrics finds every weft_* metric defined in the repository's
// non-test Go source (tests/ holds test programs and is left out): the
// Name of a prometheus.*Opts literal (with its Namespace and Subsystem, if
// any) and the name given to prometheus.NewDesc.
func registeredMetrics(t *testing.T) map[string]registeredMetric {
	t.Helper()
	root := repoRoot(t)
	out := map[string]registeredMetric{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || name == "bin" ||
				p == filepath.Join(root, "tests")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				sel, ok := n.Type.(*ast.SelectorExpr)
				if !ok || optsTypes[sel.Sel.Name] == "" {
					return true
				}
				parts := map[string]string{}
				for _, e := range n.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					k, ok1 := kv.Key.(*ast.Ident)
					v, ok2 := stringLit(kv.Value)
					if ok1 && ok2 {
						parts[k.Name] = v
					}
				}
				name := strings.Join(slices.DeleteFunc([]string{parts["Namespace"], parts["Subsystem"], parts["Name"]},
					func(s string) bool { return s == "" }), "_")
				if strings.HasPrefix(name, "weft_") {
					out[name] = registeredMetric{typ: optsTypes[sel.Sel.Name], where: rel + ":" + strconv.Itoa(fset.Position(n.Pos()).Line)}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "NewDesc" || len(n.Args) == 0 {
					return true
				}
				if name, ok := stringLit(n.Args[0]); ok && strings.HasPrefix(name, "weft_") {
					out[name] = registeredMetric{where: rel + ":" + strconv.Itoa(fset.Position(n.Pos()).Line)}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// metricRowRE matches a row of a metrics table in the reference: the
// first cell is the metric's name in backquotes, the second its type.
var metricRowRE = regexp.MustCompile("^\\|\\s*`(weft_[a-z0-9_]+)`\\s*\\|\\s*([a-z]+)\\s*\\|")

// TestMetricsReference checks that docs/reference/metrics.md has a table
// row for every weft_* metric registered in the code, with its type, and
// no row for a metric that does not exist.
func TestMetricsReference(t *testing.T) {
	registered := registeredMetrics(t)
	if len(registered) < 10 {
		t.Fatalf("found only %d registered metrics: is the source scan broken? %v", len(registered), registered)
	}
	documented := map[string]string{}
	for i, l := range strings.Split(readFile(t, metricsPage), "\n") {
		m := metricRowRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if _, dup := documented[m[1]]; dup {
			t.Errorf("%s:%d: %s is documented twice", metricsPage, i+1, m[1])
		}
		documented[m[1]] = m[2]
		r, ok := registered[m[1]]
		switch {
		case !ok:
			t.Errorf("%s:%d: %s is documented, but no code registers it (stale entry?)", metricsPage, i+1, m[1])
		case r.typ != "" && r.typ != m[2]:
			t.Errorf("%s:%d: %s is documented as a %s, but %s registers a %s", metricsPage, i+1, m[1], m[2], r.where, r.typ)
		}
	}
	for _, name := range sortedKeys(registered) {
		if _, ok := documented[name]; !ok {
			t.Errorf("%s (registered at %s) is missing from %s", name, registered[name].where, metricsPage)
		}
	}
}

var metricMentionRE = regexp.MustCompile(`\bweft_[a-z0-9_]*[a-z0-9]\b(\*)?`)

// TestMetricMentions checks that every weft_* metric name in README.md,
// docs/** and the dashboards in docs/dashboards is registered in the code
// (histograms also as _bucket, _sum and _count; "weft_tunnel_*" must match
// at least one metric).
func TestMetricMentions(t *testing.T) {
	registered := registeredMetrics(t)
	exists := func(name string, wildcard bool) bool {
		if wildcard {
			for r := range registered {
				if strings.HasPrefix(r, name) {
					return true
				}
			}
			return false
		}
		if _, ok := registered[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if r, ok := registered[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) && r.typ != "counter" && r.typ != "gauge" {
				return true
			}
		}
		return false
	}
	check := func(where, text string) {
		for _, m := range metricMentionRE.FindAllStringSubmatch(text, -1) {
			name, wildcard := m[0], m[1] == "*"
			name = strings.TrimSuffix(name, "*")
			if !exists(name, wildcard) {
				t.Errorf("%s: %s is not a metric the code registers", where, m[0])
			}
		}
	}
	for _, file := range markdownFiles(t) {
		for i, l := range strings.Split(readFile(t, file), "\n") {
			check(file+":"+strconv.Itoa(i+1), l)
		}
	}
	dashboards, err := filepath.Glob(filepath.Join(repoRoot(t), "docs", "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dashboards) == 0 {
		t.Error("no dashboard in docs/dashboards")
	}
	for _, file := range dashboards {
		rel := "docs/dashboards/" + filepath.Base(file)
		var v any
		if err := json.Unmarshal([]byte(readFile(t, rel)), &v); err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		exprs := dashboardExprs(v)
		if len(exprs) == 0 {
			t.Errorf("%s: no PromQL expression (\"expr\") found", rel)
		}
		for _, e := range exprs {
			if !metricMentionRE.MatchString(e) {
				t.Errorf("%s: expression %q uses no weft_* metric", rel, e)
			}
			check(rel+": expr "+strconv.Quote(e), e)
		}
	}
}

// dashboardExprs returns every "expr" string in a Grafana dashboard.
func dashboardExprs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(v) {
			if s, ok := v[k].(string); ok && k == "expr" {
				out = append(out, s)
				continue
			}
			out = append(out, dashboardExprs(v[k])...)
		}
	case []any:
		for _, e := range v {
			out = append(out, dashboardExprs(e)...)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
