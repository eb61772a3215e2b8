package kube

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// tailBuffer keeps the last max bytes written to it. It is safe for
// concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// reset forgets everything written so far.
func (t *tailBuffer) reset() {
	t.mu.Lock()
	t.buf = t.buf[:0]
	t.mu.Unlock()
}

// lastLines returns at most n trailing lines.
func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	s := strings.TrimRight(string(t.buf), "\n")
	t.mu.Unlock()
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (t *tailBuffer) contains(sub string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Contains(t.buf, []byte(sub))
}

// prefixWriter writes complete lines to w, each prefixed with prefix, under a
// mutex shared by all writers to the same w. It lets etcd and kube-apiserver
// share one Options.Log without interleaving partial lines.
type prefixWriter struct {
	mu      *sync.Mutex
	w       io.Writer
	prefix  []byte
	partial []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	p.partial = append(p.partial, b...)
	i := bytes.LastIndexByte(p.partial, '\n')
	if i < 0 {
		return n, nil
	}
	var out []byte
	for line := range bytes.SplitAfterSeq(p.partial[:i+1], []byte("\n")) {
		out = append(out, p.prefix...)
		out = append(out, line...)
	}
	p.partial = append(p.partial[:0], p.partial[i+1:]...)
	p.mu.Lock()
	defer p.mu.Unlock()
	// Never fail the child's output copy because of the caller's writer.
	_, _ = p.w.Write(out)
	return n, nil
}
