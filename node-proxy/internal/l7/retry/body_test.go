package retry

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReplayableBody(t *testing.T) {
	errRead := errors.New("read failed")
	tests := []struct {
		name    string
		body    io.Reader
		limit   int
		wantLen int
		wantFit bool
		wantErr error
	}{
		{"nil", nil, 10, 0, true, nil},
		{"empty", strings.NewReader(""), 10, 0, true, nil},
		{"small", strings.NewReader("hello"), 10, 5, true, nil},
		{"exact", strings.NewReader(strings.Repeat("x", 10)), 10, 10, true, nil},
		{"one over", strings.NewReader(strings.Repeat("x", 11)), 10, 11, false, nil},
		{"far over", strings.NewReader(strings.Repeat("x", 1000)), 10, 11, false, nil},
		{"limit 0, empty", strings.NewReader(""), 0, 0, true, nil},
		{"limit 0, one byte", strings.NewReader("x"), 0, 1, false, nil},
		{"max, exact", bytes.NewReader(make([]byte, MaxReplayBody)), MaxReplayBody, MaxReplayBody, true, nil},
		{"max, over", bytes.NewReader(make([]byte, MaxReplayBody+5)), MaxReplayBody, MaxReplayBody + 1, false, nil},
		{"read error", io.MultiReader(strings.NewReader("abc"), errReader{errRead}), 10, 3, false, errRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf, fit, err := ReplayableBody(tt.body, tt.limit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(buf) != tt.wantLen || fit != tt.wantFit {
				t.Errorf("got %d bytes, fit %v; want %d bytes, fit %v", len(buf), fit, tt.wantLen, tt.wantFit)
			}
		})
	}
}

// TestReplayableBodyOverBoundIsIntact: a body over the bound is still sent
// whole once, from buf followed by the rest.
func TestReplayableBodyOverBoundIsIntact(t *testing.T) {
	want := strings.Repeat("0123456789", 100)
	r := strings.NewReader(want)
	buf, fit, err := ReplayableBody(r, 64)
	if err != nil || fit {
		t.Fatalf("fit %v, err %v; want false, nil", fit, err)
	}
	got, _ := io.ReadAll(io.MultiReader(bytes.NewReader(buf), r))
	if string(got) != want {
		t.Errorf("reassembled body has %d bytes, want %d", len(got), len(want))
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
