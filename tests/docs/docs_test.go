package docs

import (
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestLinks checks that every relative link in README.md and docs/**
// points to an existing file or directory and, for a #fragment into a
// Markdown file, to one of its headings.
func TestLinks(t *testing.T) {
	root := repoRoot(t)
	parsed := map[string]parsedMarkdown{}
	parse := func(rel string) parsedMarkdown {
		if p, ok := parsed[rel]; ok {
			return p
		}
		p := parseMarkdown(readFile(t, rel))
		parsed[rel] = p
		return p
	}
	var checked int
	for _, file := range markdownFiles(t) {
		for _, l := range parse(file).text {
			for _, m := range mdLinkRE.FindAllStringSubmatch(withoutCodeSpans(l.text), -1) {
				target := strings.TrimSpace(m[2])
				if i := strings.IndexAny(target, " \t"); i >= 0 { // [x](path "title")
					target = target[:i]
				}
				target = strings.Trim(target, "<>")
				if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				p, frag, _ := strings.Cut(target, "#")
				p, err := url.PathUnescape(p)
				if err != nil {
					t.Errorf("%s:%d: link %q: %v", file, l.n, target, err)
					continue
				}
				dest := file
				if p != "" {
					dest = path.Clean(path.Join(path.Dir(file), p))
					if strings.HasPrefix(dest, "../") {
						t.Errorf("%s:%d: link %q leaves the repository", file, l.n, target)
						continue
					}
					if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(dest))); err != nil {
						t.Errorf("%s:%d: link %q: %s does not exist", file, l.n, target, dest)
						continue
					}
				}
				if frag == "" || !strings.HasSuffix(dest, ".md") {
					continue
				}
				if !anchors(parse(dest))[frag] {
					t.Errorf("%s:%d: link %q: %s has no heading with the anchor #%s", file, l.n, target, dest, frag)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no links found: is the parser broken?")
	}
	t.Logf("%d relative links checked", checked)
}

var makeTargetRE = regexp.MustCompile(`^([A-Za-z0-9_./-]+(?:[ \t]+[A-Za-z0-9_./-]+)*)[ \t]*:([^=]|$)`)

// makeTargets returns the targets the Makefile defines.
func makeTargets(t *testing.T) map[string]bool {
	targets := map[string]bool{}
	for _, l := range strings.Split(readFile(t, "Makefile"), "\n") {
		if m := makeTargetRE.FindStringSubmatch(l); m != nil {
			for _, name := range strings.Fields(m[1]) {
				targets[name] = true
			}
		}
	}
	return targets
}

// A docCommand is a command line found in the docs.
type docCommand struct {
	where string // file:line
	words []string
	raw   string
}

// docCommands returns every command line in the shell code blocks of
// README.md and docs/**, and every inline code span that is a whole
// command, whose program's base name is prog (after sudo and environment
// assignments).
func docCommands(t *testing.T, prog string) []docCommand {
	var out []docCommand
	add := func(where, raw string, words []string) {
		words = stripPrefixWords(words)
		if len(words) == 0 || path.Base(words[0]) != prog {
			return
		}
		out = append(out, docCommand{where: where, words: words[1:], raw: raw})
	}
	for _, file := range markdownFiles(t) {
		p := parseMarkdown(readFile(t, file))
		for _, b := range p.blocks {
			if !isShell(b.lang) {
				continue
			}
			for _, c := range shellCommands(b.text) {
				add(file+":"+itoa(b.line+1+c.line), c.raw, c.words)
			}
		}
		for _, l := range p.text {
			for _, span := range codeSpans(l.text) {
				for _, words := range splitShell(span) {
					add(file+":"+itoa(l.n), span, words)
				}
			}
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestMakeTargets checks that every `make TARGET` in the docs names a
// target of the Makefile.
func TestMakeTargets(t *testing.T) {
	targets := makeTargets(t)
	if !targets["help"] || !targets["test"] {
		t.Fatalf("parsed Makefile targets %v: want at least help and test", targets)
	}
	cmds := docCommands(t, "make")
	if len(cmds) == 0 {
		t.Fatal("no make command found in the docs: is the parser broken?")
	}
	for _, c := range cmds {
		for _, w := range c.words {
			if strings.HasPrefix(w, "-") || strings.Contains(w, "=") {
				continue // flags and variables (make bench-proxy ARGS=...)
			}
			if !targets[w] {
				t.Errorf("%s: %q: the Makefile has no target %q", c.where, c.raw, w)
			}
		}
	}
}

// unresolvable matches words that hold shell placeholders or syntax this
// test cannot evaluate: variables and command substitution ($VAR, $(...)),
// <placeholder> (also redirections), backquotes and ellipses. A command
// line with such a word is skipped. Words that are bracketed optional
// parts ("[TRACE-ID]") are dropped. Upper-case positional placeholders
// (NAMESPACE, ROUTE) are kept: with --help, cobra does not validate
// positional arguments, so they pass; a placeholder given as the value of
// a typed flag (--nodes N) fails, and the doc should show a real value.
var unresolvable = regexp.MustCompile("[$<>`]|\\.\\.\\.|…")

// TestWeftctlCommands runs every weftctl command line of the docs with
// --help added: unknown commands and flags, and flag values of the wrong
// type, make it exit non-zero. cobra accepts an unknown word after a
// command that only groups others (weftctl sandbox bogus), so such a
// word is refused here.
func TestWeftctlCommands(t *testing.T) {
	cmds := docCommands(t, "weftctl")
	if len(cmds) == 0 {
		t.Fatal("no weftctl command found in the docs: is the parser broken?")
	}
	tree := weftctlTree(t)
	dir := buildBinaries(t)

	// Run each distinct argument list once, a few at a time.
	type result struct {
		out  string
		code int
		err  error
	}
	results := map[string]*result{}
	var runnable []docCommand
	for _, c := range cmds {
		if slices.ContainsFunc(c.words, unresolvable.MatchString) {
			t.Logf("%s: skipped (placeholder): %s", c.where, c.raw)
			continue
		}
		c.words = slices.DeleteFunc(slices.Clone(c.words), func(w string) bool {
			return strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]")
		})
		runnable = append(runnable, c)
		results[strings.Join(c.words, "\x00")] = nil
	}
	keys := sortedKeys(results)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards results during the runs
	sem := make(chan struct{}, 4)
	for _, key := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			args := append(strings.Split(key, "\x00"), "--help")
			if key == "" {
				args = []string{"--help"}
			}
			out, code, err := execBinary(dir, "weftctl", args...)
			mu.Lock()
			results[key] = &result{out, code, err}
			mu.Unlock()
		}()
	}
	wg.Wait()

	for _, c := range runnable {
		args := c.words
		r := results[strings.Join(args, "\x00")]
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.code != 0 {
			t.Errorf("%s: %q is refused by weftctl (exit %d):\n%s", c.where, c.raw, r.code, firstLines(r.out, 3))
			continue
		}
		// The longest prefix of args that names a command.
		var path []string
		for _, w := range args {
			if strings.HasPrefix(w, "-") || !tree[strings.Join(append(slices.Clone(path), w), " ")].exists {
				break
			}
			path = append(path, w)
		}
		node := tree[strings.Join(path, " ")]
		if node.group && len(path) < len(args) && !strings.HasPrefix(args[len(path)], "-") {
			t.Errorf("%s: %q: weftctl %s has no subcommand %q", c.where, c.raw, strings.Join(path, " "), args[len(path)])
		}
	}
	t.Logf("%d weftctl command lines checked (%d distinct), %d skipped", len(runnable), len(results), len(cmds)-len(runnable))
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
