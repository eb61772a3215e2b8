package echo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestGet(t *testing.T) {
	s := start(t, false)
	base := "http://" + s.Addrs()[0].String()
	for _, tc := range []struct {
		name      string
		req       Request
		status    int
		proto     string
		wantReply bool
	}{
		{"http1", Request{URL: base + "/a?status=418", Header: http.Header{"X-A": {"b"}}}, 418, "HTTP/1.1", true},
		{"h2c", Request{URL: base + "/b", H2C: true}, 200, "HTTP/2.0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Get(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.status || res.Proto != tc.proto {
				t.Errorf("got status %d %s, want %d %s", res.Status, res.Proto, tc.status, tc.proto)
			}
			if res.Reply == nil || res.Reply.Pod != "echo-1" || res.Body != "" {
				t.Fatalf("got reply %+v and body %q, want a reply from echo-1", res.Reply, res.Body)
			}
			if got := http.Header(res.Reply.Headers).Get("X-A"); tc.req.Header != nil && got != "b" {
				t.Errorf("server saw X-A %q, want b", got)
			}
		})
	}

	// A body that is not a weft-echo reply is kept as text.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
	}))
	defer other.Close()
	res, err := Get(context.Background(), Request{URL: other.URL})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 503 || res.Reply != nil || res.Body != "upstream connect error\n" {
		t.Errorf("got %+v, want status 503 and the body as text", res)
	}

	if _, err := Get(context.Background(), Request{URL: "http://127.0.0.1:1/"}); err == nil {
		t.Errorf("Get of a closed port: got no error, want one")
	}
}
