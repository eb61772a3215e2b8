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
		return copyChunked(w, br, nil)
	case b.Length < 0:
		return copyN(w, br, -1)
	default:
		return copyN(w, br, b.Length)
	}
}

// Buffer appends the body to dst as received, if it is complete within
// limit bytes: fit is then true and br is past the body. Otherwise dst
// holds what was read so far (up to about limit bytes), fit is false, and
// the caller must write dst and then Continue the copy.
func (b Body) Buffer(dst []byte, br *bufio.Reader, limit int) (out []byte, fit bool, err error) {
	switch {
	case b.Chunked:
		lw := &limitedBuf{b: dst, limit: len(dst) + limit}
		_, err := copyChunked(lw, br, &lw.full)
		if err == errFull {
			return lw.b, false, nil
		}
		return lw.b, err == nil, err
	case b.Length < 0 || b.Length > int64(limit):
		return dst, false, nil
	default:
		n := int(b.Length)
		for n > 0 {
			p, err := peek(br, int64(n))
			if err != nil {
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
		return ContinueChunked(w, br)
	}
	if b.Length < 0 {
		return copyN(w, br, -1)
	}
	return copyN(w, br, b.Length-int64(consumed))
}

var errFull = io.ErrShortBuffer

// limitedBuf collects up to limit bytes and then reports errFull, at a
// point where copyChunked can resume (see ContinueChunked).
type limitedBuf struct {
	b     []byte
	limit int
	full  bool
}

func (l *limitedBuf) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) >= l.limit {
		l.full = true
	}
	return len(p), nil
}

// ContinueChunked resumes a chunked copy that Buffer stopped: Buffer stops
// only after a complete chunk (size line, data and CRLF), so the next
// bytes are a chunk-size line.
func ContinueChunked(w io.Writer, br *bufio.Reader) (int64, error) {
	return copyChunked(w, br, nil)
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
func copyN(w io.Writer, br *bufio.Reader, n int64) (int64, error) {
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

// copyChunked copies a chunked body, validating its framing. When stop is
// not nil, it returns errFull after a chunk once *stop is true.
func copyChunked(w io.Writer, br *bufio.Reader, stop *bool) (int64, error) {
	var done int64
	write := func(p []byte) error {
		k, err := w.Write(p)
		done += int64(k)
		return err
	}
	for {
		if stop != nil && *stop {
			return done, errFull
		}
		line, err := readLine(br)
		if err != nil {
			return done, err
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, ok := parseHex(bytes.Trim(size, " \t"))
		if !ok {
			return done, malformed("chunk size %q", trunc(line))
		}
		if err := write(line); err != nil {
			return done, err
		}
		if n == 0 {
			// Trailers up to an empty line.
			for {
				line, err := readLine(br)
				if err != nil {
					return done, err
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
		line, err = readLine(br)
		if err != nil {
			return done, err
		}
		if len(line) != 2 {
			return done, malformed("chunk data longer than its size")
		}
		if err := write(line); err != nil {
			return done, err
		}
	}
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
