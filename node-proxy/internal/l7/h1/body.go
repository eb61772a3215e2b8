package h1

import (
	"bufio"
	"bytes"
	"io"
)

// Body says how a message's body is framed.
type Body struct {
	Length  int64 // bytes; -1 with Chunked false means until the connection ends
	Chunked bool
}

// RequestBody is the framing of a request's body: no body without
// Content-Length or chunked (RFC 9112 6.3).
func (h *Head) RequestBody() Body {
	if h.Chunked {
		return Body{Length: -1, Chunked: true}
	}
	return Body{Length: max(h.ContentLength, 0)}
}

// ResponseBody is the framing of the response to a request with method.
func (h *Head) ResponseBody(method []byte) Body {
	switch {
	case h.Bodyless(method):
		return Body{}
	case h.Chunked:
		return Body{Length: -1, Chunked: true}
	default:
		return Body{Length: h.ContentLength}
	}
}

// Empty reports a body of no bytes.
func (b Body) Empty() bool { return !b.Chunked && b.Length == 0 }

// Copy carries the body from br to w as received (chunked framing and
// trailers included). It returns the bytes written.
func (b Body) Copy(w io.Writer, br *bufio.Reader) (int64, error) {
	switch {
	case b.Chunked:
		return copyChunked(&sink{w: w}, br, -1)
	case b.Length < 0:
		return copyN(&sink{w: w}, br, -1)
	default:
		return copyN(&sink{w: w}, br, b.Length)
	}
}

// Buffer appends the body to dst as received, if it is complete within
// limit bytes (a chunked body's trailers may add up to MaxHead): fit is
// then true and br is past the body. Otherwise dst holds what was read so
// far (at most limit bytes: nothing for a Content-Length body, whole
// chunks for a chunked one), fit is false, and the caller must write dst
// and then Continue the copy. On an error, dst holds what was read.
func (b Body) Buffer(dst []byte, br *bufio.Reader, limit int) (out []byte, fit bool, err error) {
	switch {
	case b.Chunked:
		sk := sink{buf: dst, append: true}
		_, err := copyChunked(&sk, br, int64(limit))
		if err == errFull {
			return sk.buf, false, nil
		}
		return sk.buf, err == nil, err
	case b.Length < 0 || b.Length > int64(limit):
		return dst, false, nil
	default:
		n := int(b.Length)
		for n > 0 {
			p, err := peek(br, int64(n))
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return dst, false, err
			}
			dst = append(dst, p...)
			_, _ = br.Discard(len(p))
			n -= len(p)
		}
		return dst, true, nil
	}
}

// Continue copies the rest of a body Buffer did not fit; consumed is
// how many bytes Buffer read. A chunked Buffer stops after a whole chunk,
// so the copy resumes at a chunk-size line.
func (b Body) Continue(w io.Writer, br *bufio.Reader, consumed int) (int64, error) {
	if b.Chunked {
		return copyChunked(&sink{w: w}, br, -1)
	}
	if b.Length < 0 {
		return copyN(&sink{w: w}, br, -1)
	}
	return copyN(&sink{w: w}, br, b.Length-int64(consumed))
}

var errFull = io.ErrShortBuffer

// sink is where a copy goes: w, or buf when append is set (without the
// allocation of an io.Writer wrapping buf).
type sink struct {
	w      io.Writer
	buf    []byte
	append bool
}

func (s *sink) Write(p []byte) (int, error) {
	if s.append {
		s.buf = append(s.buf, p...)
		return len(p), nil
	}
	return s.w.Write(p)
}

// ContinueChunked resumes a chunked copy that Buffer stopped: Buffer stops
// only before a chunk that would not fit, so the next bytes are a
// chunk-size line.
func ContinueChunked(w io.Writer, br *bufio.Reader) (int64, error) {
	return copyChunked(&sink{w: w}, br, -1)
}

// peek returns up to n (n < 0: any) buffered bytes, filling the buffer
// when it is empty.
func peek(br *bufio.Reader, n int64) ([]byte, error) {
	if br.Buffered() == 0 {
		if _, err := br.Peek(1); err != nil {
			return nil, err
		}
	}
	k := br.Buffered()
	if n >= 0 && int64(k) > n {
		k = int(n)
	}
	return br.Peek(k)
}

// copyN copies n bytes (n < 0: until EOF) from br to w.
func copyN(w *sink, br *bufio.Reader, n int64) (int64, error) {
	var done int64
	for n < 0 || done < n {
		rem := int64(-1)
		if n >= 0 {
			rem = n - done
		}
		p, err := peek(br, rem)
		if err != nil {
			if err == io.EOF && n < 0 {
				return done, nil
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, err
		}
		k, err := w.Write(p)
		done += int64(k)
		_, _ = br.Discard(k)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// copyChunked copies a chunked body, validating its framing. With budget
// >= 0 it copies only whole chunks (size line, data, CRLF; the last chunk
// with its size line) within budget bytes: before a chunk that would not
// fit it returns errFull, br at that chunk's size line.
func copyChunked(w *sink, br *bufio.Reader, budget int64) (int64, error) {
	var done int64
	write := func(p []byte) error {
		k, err := w.Write(p)
		done += int64(k)
		return err
	}
	for {
		line, err := peekLine(br)
		if err != nil {
			return done, err
		}
		n, ok := chunkSize(line)
		if !ok {
			return done, malformed("chunk size line %q", trunc(line))
		}
		if budget >= 0 {
			need := int64(len(line))
			if n > 0 {
				need += n + 2
			}
			if done+need > budget {
				return done, errFull
			}
		}
		_, _ = br.Discard(len(line)) // line stays valid until the next read
		if err := write(line); err != nil {
			return done, err
		}
		if n == 0 {
			// Trailer fields up to an empty line, at most MaxHead bytes.
			total := 0
			for {
				line, err := readLine(br)
				if err != nil {
					return done, err
				}
				if total += len(line); total > MaxHead {
					return done, malformed("trailers over %d bytes", MaxHead)
				}
				if len(line) > 2 && !validTrailer(line[:len(line)-2]) {
					return done, malformed("trailer line %q", trunc(line))
				}
				if err := write(line); err != nil {
					return done, err
				}
				if len(line) == 2 {
					return done, nil
				}
			}
		}
		k, err := copyN(w, br, n)
		done += k
		if err != nil {
			return done, err
		}
		crlf, err := br.Peek(2)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, err
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return done, malformed("chunk data longer than its size")
		}
		if err := write(crlf); err != nil {
			return done, err
		}
		_, _ = br.Discard(2)
	}
}

// chunkSize parses a chunk-size line (with its CRLF): 1*HEXDIG, then
// optional whitespace and extensions free of control characters.
func chunkSize(line []byte) (int64, bool) {
	line = line[:len(line)-2]
	i := 0
	for i < len(line) && isHex(line[i]) {
		i++
	}
	n, ok := parseHex(line[:i])
	if !ok {
		return 0, false
	}
	rest := bytes.TrimLeft(line[i:], " \t")
	if len(rest) > 0 && rest[0] != ';' {
		return 0, false
	}
	return n, validValue(rest)
}

// validTrailer reports whether line is a well-formed field line.
func validTrailer(line []byte) bool {
	name, value, ok := bytes.Cut(line, []byte(":"))
	return ok && len(name) > 0 && isToken(name) && validValue(value)
}

// peekLine returns the next line with its CRLF without consuming it; the
// slice is valid until the next read of br.
func peekLine(br *bufio.Reader) ([]byte, error) {
	scanned := 0
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.IndexByte(b[scanned:], '\n'); i >= 0 {
			line := b[:scanned+i+1]
			if len(line) > MaxLine {
				break
			}
			if len(line) < 2 || line[len(line)-2] != '\r' {
				return nil, malformed("bare LF")
			}
			return line, nil
		}
		scanned = len(b)
		if scanned >= MaxLine || scanned >= br.Size() {
			break
		}
		if _, err := br.Peek(scanned + 1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return nil, malformed("line over %d bytes", MaxLine)
}

// readLine returns the next line with its CRLF; the slice is valid until
// the next read of br.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > MaxLine {
		return nil, malformed("line over %d bytes", MaxLine)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, malformed("bare LF")
	}
	return line, nil
}

func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}
