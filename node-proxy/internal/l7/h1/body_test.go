package h1

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFraming(t *testing.T) {
	req := func(in string) *Head {
		var h Head
		if err := h.ReadRequest(reader(in)); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		return &h
	}
	resp := func(in string) *Head {
		var h Head
		if err := h.ReadResponse(reader(in)); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		return &h
	}
	for _, tt := range []struct {
		name  string
		got   Body
		want  Body
		empty bool
	}{
		{"request without length", req("GET / HTTP/1.1\r\n\r\n").RequestBody(), Body{}, true},
		{"request CL", req("POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\n").RequestBody(), Body{Length: 7}, false},
		{"request CL 0", req("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").RequestBody(), Body{}, true},
		{"request chunked", req("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").RequestBody(), Body{Length: -1, Chunked: true}, false},
		{"response CL", resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n").ResponseBody([]byte("GET")), Body{Length: 3}, false},
		{"response close-delimited", resp("HTTP/1.1 200 OK\r\n\r\n").ResponseBody([]byte("GET")), Body{Length: -1}, false},
		{"response chunked", resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").ResponseBody([]byte("GET")), Body{Length: -1, Chunked: true}, false},
		{"response to HEAD", resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n").ResponseBody([]byte("HEAD")), Body{}, true},
		{"204", resp("HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n").ResponseBody([]byte("GET")), Body{}, true},
		{"304", resp("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n").ResponseBody([]byte("GET")), Body{}, true},
		{"1xx", resp("HTTP/1.1 100 Continue\r\n\r\n").ResponseBody([]byte("POST")), Body{}, true},
		{"101", resp("HTTP/1.1 101 Switching Protocols\r\n\r\n").ResponseBody([]byte("GET")), Body{}, true},
	} {
		if tt.got != tt.want || tt.got.Empty() != tt.empty {
			t.Errorf("%s: got %+v (empty %v), want %+v (empty %v)", tt.name, tt.got, tt.got.Empty(), tt.want, tt.empty)
		}
	}
}

const chunkedBody = "5\r\nhello\r\n" +
	"6;name=value;x\r\n world\r\n" +
	"A \t;ext=\"quoted\"\r\n0123456789\r\n" +
	"0\r\n" +
	"Checksum: abc\r\n" +
	"X-Trailer: 1\r\n" +
	"\r\n"

func TestCopy(t *testing.T) {
	const after = "NEXT"
	tests := []struct {
		name string
		body Body
		in   string // body then, for all but close-delimited, after
	}{
		{"content-length", Body{Length: 11}, "hello world"},
		{"empty", Body{}, ""},
		{"chunked", Body{Length: -1, Chunked: true}, chunkedBody},
		{"chunked no trailers", Body{Length: -1, Chunked: true}, "3\r\nabc\r\n0\r\n\r\n"},
		{"chunked empty", Body{Length: -1, Chunked: true}, "0\r\n\r\n"},
		{"chunked upper hex", Body{Length: -1, Chunked: true}, "1F\r\n" + strings.Repeat("x", 31) + "\r\n0\r\n\r\n"},
		{"chunked big", Body{Length: -1, Chunked: true}, "10000\r\n" + strings.Repeat("y", 1<<16) + "\r\n0\r\n\r\n"},
		{"large content-length", Body{Length: 100000}, strings.Repeat("z", 100000)},
	}
	for _, tt := range tests {
		for name, mk := range map[string]func(string) *bufio.Reader{"whole": reader, "one byte": oneByte} {
			br := mk(tt.in + after)
			var out bytes.Buffer
			n, err := tt.body.Copy(&out, br)
			if err != nil || n != int64(len(tt.in)) || out.String() != tt.in {
				t.Errorf("%s (%s): Copy = %d, %v; out %q", tt.name, name, n, err, trunc(out.Bytes()))
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != after {
				t.Errorf("%s (%s): left %q, want %q", tt.name, name, rest, after)
			}
		}
	}
	// Close-delimited: until EOF.
	for _, mk := range []func(string) *bufio.Reader{reader, oneByte} {
		var out bytes.Buffer
		n, err := Body{Length: -1}.Copy(&out, mk("all of it\r\n0\r\n\r\n"))
		if err != nil || n != 16 || out.String() != "all of it\r\n0\r\n\r\n" {
			t.Errorf("close-delimited: %d, %v, %q", n, err, out.String())
		}
	}
}

func TestCopyErrors(t *testing.T) {
	ch := Body{Length: -1, Chunked: true}
	tests := []struct {
		name string
		body Body
		in   string
		want error // nil: ErrMalformed
	}{
		{"short content-length", Body{Length: 10}, "abc", io.ErrUnexpectedEOF},
		{"chunk size not hex", ch, "z\r\nabc\r\n0\r\n\r\n", nil},
		{"chunk size empty", ch, "\r\nabc\r\n0\r\n\r\n", nil},
		{"chunk size leading space", ch, " 3\r\nabc\r\n0\r\n\r\n", nil},
		{"chunk size sign", ch, "+3\r\nabc\r\n0\r\n\r\n", nil},
		{"chunk size 0x", ch, "0x3\r\nabc\r\n0\r\n\r\n", nil},
		{"chunk size junk after", ch, "3 x\r\nabc\r\n0\r\n\r\n", nil},
		{"chunk size overflow", ch, "10000000000000000\r\nabc\r\n0\r\n\r\n", nil},
		{"chunk size bare LF", ch, "3\nabc\r\n0\r\n\r\n", nil},
		{"chunk ext with CR", ch, "3;a\rb\r\nabc\r\n0\r\n\r\n", nil},
		{"chunk size line too long", ch, "3;" + strings.Repeat("e", 5000) + "\r\nabc\r\n0\r\n\r\n", nil},
		{"chunk data longer than size", ch, "3\r\nabcd\r\n0\r\n\r\n", nil},
		{"chunk data without CRLF", ch, "3\r\nabc\n0\r\n\r\n", nil},
		{"chunk data then LF only", ch, "3\r\nabc\n\r\n0\r\n\r\n", nil},
		{"trailer bare LF", ch, "0\r\nX: y\n\r\n", nil},
		{"trailer without colon", ch, "0\r\nXy\r\n\r\n", nil},
		{"trailer folded", ch, "0\r\nX: y\r\n z\r\n\r\n", nil},
		{"trailer CTL", ch, "0\r\nX: \x01\r\n\r\n", nil},
		{"trailers over MaxHead", ch, "0\r\n" + strings.Repeat("X: "+strings.Repeat("t", 1000)+"\r\n", 70) + "\r\n", nil},
		{"chunked truncated in size", ch, "3", io.ErrUnexpectedEOF},
		{"chunked truncated in data", ch, "3\r\nab", io.ErrUnexpectedEOF},
		{"chunked truncated before CRLF", ch, "3\r\nabc", io.ErrUnexpectedEOF},
		{"chunked truncated in trailers", ch, "0\r\nX: y\r\n", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		for mode, mk := range map[string]func(string) *bufio.Reader{"whole": reader, "one byte": oneByte} {
			_, err := tt.body.Copy(io.Discard, mk(tt.in))
			if tt.want == nil && !errors.Is(err, ErrMalformed) || tt.want != nil && err != tt.want {
				t.Errorf("%s (%s): Copy: got %v, want %v", tt.name, mode, err, cmp.Or(tt.want, ErrMalformed))
			}
			_, _, err = tt.body.Buffer(nil, mk(tt.in), 1<<20)
			if tt.want == nil && !errors.Is(err, ErrMalformed) || tt.want != nil && err != tt.want {
				t.Errorf("%s (%s): Buffer: got %v, want %v", tt.name, mode, err, cmp.Or(tt.want, ErrMalformed))
			}
		}
	}
}

var errWrite = errors.New("write failed")

// failWriter accepts n bytes, then fails.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return len(p), nil
	}
	k := f.n
	f.n = 0
	return k, errWrite
}

func TestCopyWriteError(t *testing.T) {
	for _, tt := range []struct {
		body Body
		in   string
	}{
		{Body{Length: 11}, "hello world"},
		{Body{Length: -1}, "hello world"},
		{Body{Length: -1, Chunked: true}, chunkedBody},
	} {
		for n := range len(tt.in) {
			done, err := tt.body.Copy(&failWriter{n: n}, reader(tt.in))
			if err != errWrite || done != int64(n) {
				t.Errorf("%+v fail after %d: got %d, %v", tt.body, n, done, err)
			}
		}
	}
}

func TestCopyReadError(t *testing.T) {
	br := bufio.NewReader(io.MultiReader(strings.NewReader("5\r\nab"), iotest.ErrReader(errRead)))
	if _, err := (Body{Length: -1, Chunked: true}).Copy(io.Discard, br); err != errRead {
		t.Errorf("chunked: got %v", err)
	}
	br = bufio.NewReader(io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(errRead)))
	if _, err := (Body{Length: -1}).Copy(io.Discard, br); err != errRead {
		t.Errorf("close-delimited: got %v", err)
	}
}

func TestBuffer(t *testing.T) {
	ch := Body{Length: -1, Chunked: true}
	tests := []struct {
		name  string
		body  Body
		in    string
		limit int
		fit   bool
		got   string // what Buffer holds
	}{
		{"CL fits", Body{Length: 5}, "hello", 5, true, "hello"},
		{"CL too long", Body{Length: 5}, "hello", 4, false, ""},
		{"close-delimited never fits", Body{Length: -1}, "hello", 100, false, ""},
		{"chunked fits", ch, chunkedBody, len(chunkedBody), true, chunkedBody},
		{"chunked fits exactly without trailers", ch, "5\r\nhello\r\n0\r\n\r\n", 13, true, "5\r\nhello\r\n0\r\n\r\n"},
		{"chunked last chunk does not fit", ch, "5\r\nhello\r\n0\r\n\r\n", 12, false, "5\r\nhello\r\n"},
		{"chunked second chunk does not fit", ch, chunkedBody, 12, false, "5\r\nhello\r\n"},
		{"chunked first chunk does not fit", ch, chunkedBody, 9, false, ""},
		{"chunked limit 0", ch, "0\r\n\r\n", 0, false, ""},
		{"chunked huge chunk is not read", ch, "100000\r\n" + strings.Repeat("h", 1<<20) + "\r\n0\r\n\r\n", 1 << 16, false, ""},
	}
	for _, tt := range tests {
		for mode, mk := range map[string]func(string) *bufio.Reader{"whole": reader, "one byte": oneByte} {
			br := mk(tt.in)
			pre := []byte("PRE")
			got, fit, err := tt.body.Buffer(pre, br, tt.limit)
			if err != nil || fit != tt.fit || string(got) != "PRE"+tt.got {
				t.Errorf("%s (%s): Buffer = %q, %v, %v; want %q, %v", tt.name, mode, trunc(got), fit, err, tt.got, tt.fit)
				continue
			}
			var rest bytes.Buffer
			if !fit {
				if _, err := tt.body.Continue(&rest, br, len(got)-3); err != nil {
					t.Errorf("%s (%s): Continue: %v", tt.name, mode, err)
				}
			}
			if s := string(got[3:]) + rest.String(); s != tt.in {
				t.Errorf("%s (%s): buffered + continued = %q, want %q", tt.name, mode, trunc([]byte(s)), trunc([]byte(tt.in)))
			}
		}
	}
	// ContinueChunked is Continue of a chunked body.
	br := reader("3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
	got, fit, err := Body{Length: -1, Chunked: true}.Buffer(nil, br, 10)
	var rest bytes.Buffer
	if _, err2 := ContinueChunked(&rest, br); err != nil || err2 != nil || fit || string(got)+rest.String() != "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n" {
		t.Errorf("ContinueChunked: %q + %q, %v, %v, %v", got, rest.String(), fit, err, err2)
	}
	// A short Content-Length body.
	if _, fit, err := (Body{Length: 10}).Buffer(nil, reader("abc"), 100); fit || err != io.ErrUnexpectedEOF {
		t.Errorf("short CL: %v, %v", fit, err)
	}
}

// randomChunked returns a chunked encoding of a random body with random
// chunk sizes, extensions and trailers, and the length of it without the
// trailer section.
func randomChunked(r *rand.Rand) (string, int) {
	var b strings.Builder
	for range r.IntN(8) {
		n := r.IntN(300) + 1
		if r.IntN(4) == 0 {
			n += r.IntN(6000)
		}
		switch r.IntN(3) {
		case 0:
			fmt.Fprintf(&b, "%x\r\n", n)
		case 1:
			fmt.Fprintf(&b, "%X;e=%d\r\n", n, r.IntN(100))
		default:
			fmt.Fprintf(&b, "%06x ; a ; b=\"c\"\r\n", n)
		}
		for i := range n {
			b.WriteByte(byte('a' + (i+n)%26))
		}
		b.WriteString("\r\n")
	}
	b.WriteString("0\r\n")
	n := b.Len()
	for i := range r.IntN(3) {
		fmt.Fprintf(&b, "T-%d: %d\r\n", i, r.Int())
	}
	b.WriteString("\r\n")
	return b.String(), n
}

// TestBufferContinueProperty: whatever the chunk layout, limit and read
// sizes, the buffered prefix and the continued rest are the original
// encoding, fit means it all was buffered within the limit (but for a
// chunked body's trailer section), and a body that does not fit buffers at
// most limit bytes.
func TestBufferContinueProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		var in string
		var size int // what must fit within limit
		var body Body
		if i%3 == 0 {
			in = strings.Repeat("q", r.IntN(20000))
			size, body = len(in), Body{Length: int64(len(in))}
		} else {
			in, size = randomChunked(r)
			body = Body{Length: -1, Chunked: true}
		}
		limit := r.IntN(len(in) + 100)
		var src io.Reader = strings.NewReader(in + "NEXT")
		if r.IntN(2) == 0 {
			src = iotest.HalfReader(src)
		}
		if r.IntN(4) == 0 {
			src = iotest.OneByteReader(src)
		}
		br := bufio.NewReaderSize(src, 4096)
		got, fit, err := body.Buffer(nil, br, limit)
		if err != nil {
			t.Fatalf("%q limit %d: Buffer: %v", trunc([]byte(in)), limit, err)
		}
		if fit != (size <= limit) || !fit && len(got) > limit {
			t.Fatalf("%q limit %d: fit %v with %d bytes buffered", trunc([]byte(in)), limit, fit, len(got))
		}
		var rest bytes.Buffer
		if !fit {
			n, err := body.Continue(&rest, br, len(got))
			if err != nil || n != int64(len(in)-len(got)) {
				t.Fatalf("%q limit %d: Continue = %d, %v", trunc([]byte(in)), limit, n, err)
			}
		}
		if string(got)+rest.String() != in {
			t.Fatalf("limit %d: buffered + continued differs from the original", limit)
		}
		if tail, _ := io.ReadAll(br); string(tail) != "NEXT" {
			t.Fatalf("limit %d: left %q", limit, tail)
		}
	}
}

func BenchmarkCopyChunked(b *testing.B) {
	var body strings.Builder
	for range 16 {
		fmt.Fprintf(&body, "%x\r\n%s\r\n", 1000, strings.Repeat("c", 1000))
	}
	body.WriteString("0\r\nX-Sum: 1\r\n\r\n")
	in := body.String()
	r := strings.NewReader(in)
	br := bufio.NewReaderSize(r, 4096)
	ch := Body{Length: -1, Chunked: true}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		r.Reset(in)
		br.Reset(r)
		if _, err := ch.Copy(io.Discard, br); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNoAllocs: reading a head, copying and buffering bodies allocate
// nothing once the Head and the buffer have grown.
func TestNoAllocs(t *testing.T) {
	const in = "POST /a?b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedBody +
		"PUT /c HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
	r := strings.NewReader(in)
	br := bufio.NewReader(r)
	var h Head
	buf := make([]byte, 0, 1024)
	for name, f := range map[string]func(){
		"Copy": func() {
			for range 2 {
				if err := h.ReadRequest(br); err != nil {
					t.Fatal(err)
				}
				if _, err := h.RequestBody().Copy(io.Discard, br); err != nil {
					t.Fatal(err)
				}
			}
		},
		"Buffer": func() {
			for _, limit := range []int{1024, 1} {
				for range 2 {
					if err := h.ReadRequest(br); err != nil {
						t.Fatal(err)
					}
					b := h.RequestBody()
					got, fit, err := b.Buffer(buf[:0], br, limit)
					if err != nil {
						t.Fatal(err)
					}
					if !fit {
						if _, err := b.Continue(io.Discard, br, len(got)); err != nil {
							t.Fatal(err)
						}
					}
				}
				r.Reset(in)
				br.Reset(r)
			}
		},
	} {
		if n := testing.AllocsPerRun(100, func() { r.Reset(in); br.Reset(r); f() }); n != 0 {
			t.Errorf("%s: %v allocations, want 0", name, n)
		}
	}
}
