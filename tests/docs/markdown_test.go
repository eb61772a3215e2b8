package docs

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// A codeBlock is a fenced code block of a Markdown file.
type codeBlock struct {
	lang string // the first word of the info string, lower case
	line int    // 1-based line of the opening fence
	text string // the content, with the fence's indentation removed
}

// A textLine is a line of a Markdown file outside code blocks.
type textLine struct {
	n    int
	text string
}

// parsedMarkdown is a Markdown file split into code blocks and the rest.
type parsedMarkdown struct {
	blocks []codeBlock
	text   []textLine
}

var fenceRE = regexp.MustCompile("^( *)(`{3,}|~{3,})\\s*([^`\\s]*)")

// parseMarkdown splits src into fenced code blocks and other lines. Fences
// may be indented (inside list items); a block ends at a fence of the same
// character at least as long as the opening one.
func parseMarkdown(src string) parsedMarkdown {
	var p parsedMarkdown
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			p.text = append(p.text, textLine{i + 1, lines[i]})
			continue
		}
		indent, fence := len(m[1]), m[2]
		b := codeBlock{lang: strings.ToLower(m[3]), line: i + 1}
		var body []string
		for i++; i < len(lines); i++ {
			trimmed := strings.TrimLeft(lines[i], " ")
			if strings.HasPrefix(trimmed, fence[:1]) && len(trimmed)-len(strings.TrimLeft(trimmed, fence[:1])) >= len(fence) &&
				strings.TrimSpace(strings.TrimLeft(trimmed, fence[:1])) == "" {
				break
			}
			l := lines[i]
			for k := 0; k < indent && strings.HasPrefix(l, " "); k++ {
				l = l[1:]
			}
			body = append(body, l)
		}
		b.text = strings.Join(body, "\n")
		p.blocks = append(p.blocks, b)
	}
	return p
}

var codeSpanRE = regexp.MustCompile("`+[^`]*`+")

// codeSpans returns the inline code spans of a line (without backticks).
func codeSpans(line string) []string {
	var out []string
	for _, s := range codeSpanRE.FindAllString(line, -1) {
		out = append(out, strings.Trim(s, "`"))
	}
	return out
}

// withoutCodeSpans blanks the inline code spans of a line, so that links
// inside them are not taken for links.
func withoutCodeSpans(line string) string {
	return codeSpanRE.ReplaceAllStringFunc(line, func(s string) string { return strings.Repeat(" ", len(s)) })
}

var envAssignRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

var (
	headingRE = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	mdLinkRE  = regexp.MustCompile(`\[([^\]]*)\]\(([^)]*)\)`)
)

// anchors returns the GitHub anchors of the headings of a Markdown file:
// lower case, punctuation removed, spaces turned into hyphens, and -1, -2
// ... appended to repeated ones.
func anchors(p parsedMarkdown) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, l := range p.text {
		m := headingRE.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		slug := slugify(m[2])
		if n := seen[slug]; n > 0 {
			out[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

func slugify(heading string) string {
	heading = mdLinkRE.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// shellCommands splits the content of a shell code block into commands:
// comments removed, continuation lines joined, and lines split at ;, &&,
// || and | (outside quotes). Each command is returned with the line it
// starts on (relative to the block) and its words, quotes removed.
func shellCommands(block string) []shellCommand {
	var out []shellCommand
	lines := strings.Split(block, "\n")
	for i := 0; i < len(lines); i++ {
		start := i
		l := lines[i]
		for strings.HasSuffix(strings.TrimRight(l, " "), "\\") && i+1 < len(lines) {
			l = strings.TrimSuffix(strings.TrimRight(l, " "), "\\") + " " + lines[i+1]
			i++
		}
		// A prompt, as in "$ make demo" or "# weftctl ...", is not part of the command.
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "$ ") {
			trimmed = trimmed[2:]
		}
		for _, words := range splitShell(trimmed) {
			if len(words) > 0 {
				out = append(out, shellCommand{line: start, words: words, raw: trimmed})
			}
		}
	}
	return out
}

type shellCommand struct {
	line  int
	words []string
	raw   string // the whole line it came from
}

// splitShell tokenizes one line of shell: words separated by blanks, with
// '...' and "..." quoting and backslash escapes, # starting a comment at
// the beginning of a word, and ;, &, && , || and | separating commands.
func splitShell(line string) [][]string {
	var cmds [][]string
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		flush()
		cmds = append(cmds, words)
		words = nil
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				j = len(line) - i - 1
			}
			cur.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
				cur.WriteByte(line[i])
			}
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '#' && !inWord:
			endCmd()
			return cmds
		case c == ';' || c == '|' || c == '&':
			endCmd()
			if i+1 < len(line) && (line[i+1] == c) {
				i++
			}
		case c == ' ' || c == '\t':
			flush()
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	endCmd()
	return cmds
}

// isShell reports whether a code block's language is a shell.
func isShell(lang string) bool {
	switch lang {
	case "sh", "bash", "shell", "console", "zsh":
		return true
	}
	return false
}

// stripPrefixWords removes what may precede a command: environment
// assignments (CGO_ENABLED=0), sudo and env.
func stripPrefixWords(words []string) []string {
	for len(words) > 0 {
		w := words[0]
		switch {
		case w == "sudo" || w == "env":
			words = words[1:]
		case envAssignRE.MatchString(w):
			words = words[1:]
		default:
			return words
		}
	}
	return words
}
