package echo

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	echov1 "github.com/weftmesh/weft/api/echo/v1"
)

func start(t *testing.T, serverFirst bool) *Server {
	t.Helper()
	s, err := Start(Config{Pod: "echo-1", Namespace: "shop", Node: "node-a", HTTPAddr: "127.0.0.1:0",
		GRPCAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", ServerFirst: serverFirst})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return resp, r
}

func TestHTTP1AndH2C(t *testing.T) {
	s := start(t, false)
	base := "http://" + s.Addrs()[0].String()
	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	for _, tc := range []struct {
		name   string
		client *http.Client
		proto  string
	}{
		{"HTTP/1.1", &http.Client{}, "HTTP/1.1"},
		{"h2c", &http.Client{Transport: &http.Transport{Protocols: &h2}}, "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, r := get(t, tc.client, base+"/hello?x=1", map[string]string{"x-weft-peer-identity": "spiffe://cluster.local/ns/a/sa/b"})
			if resp.StatusCode != 200 || r.Pod != "echo-1" || r.Namespace != "shop" || r.Node != "node-a" || r.Proto != tc.proto ||
				r.Path != "/hello?x=1" || r.Identity != "spiffe://cluster.local/ns/a/sa/b" || r.Peer == "" {
				t.Errorf("got %d %+v", resp.StatusCode, r)
			}
			if resp.Header.Get("x-echo-pod") != "echo-1" {
				t.Errorf("x-echo-pod = %q", resp.Header.Get("x-echo-pod"))
			}
		})
	}
}

func TestHTTPControls(t *testing.T) {
	s := start(t, false)
	base := "http://" + s.Addrs()[0].String()
	c := &http.Client{}
	if resp, _ := get(t, c, base+"/?status=418", nil); resp.StatusCode != 418 {
		t.Errorf("status=418 gave %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, base+"/", map[string]string{"x-echo-status": "503"}); resp.StatusCode != 503 {
		t.Errorf("x-echo-status: 503 gave %d", resp.StatusCode)
	}
	for range 20 {
		if resp, _ := get(t, c, base+"/?fail_percent=100", nil); resp.StatusCode != 503 {
			t.Fatalf("fail_percent=100 gave %d", resp.StatusCode)
		}
		if resp, _ := get(t, c, base+"/?fail_percent=0", nil); resp.StatusCode != 200 {
			t.Fatalf("fail_percent=0 gave %d", resp.StatusCode)
		}
	}
	if resp, _ := get(t, c, base+"/?fail_pod="+s.cfg.Pod, nil); resp.StatusCode != 503 {
		t.Errorf("fail_pod naming this pod gave %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, base+"/?fail_pod=another-pod", nil); resp.StatusCode != 200 {
		t.Errorf("fail_pod naming another pod gave %d", resp.StatusCode)
	}
	start := time.Now()
	get(t, c, base+"/?delay=150ms", nil)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("delay=150ms answered after %s", d)
	}
	resp, err := c.Get(base + "/?size=100000")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n < 100000 || resp.ContentLength != n {
		t.Errorf("size=100000 gave %d bytes (content-length %d)", n, resp.ContentLength)
	}
	if resp, err := c.Get(base + "/?delay=forever"); err != nil || resp.StatusCode != 400 {
		t.Errorf("bad delay gave %v %v", resp.StatusCode, err)
	}
}

func TestGRPC(t *testing.T) {
	s := start(t, false)
	conn, err := grpc.NewClient(s.Addrs()[1].String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := echov1.NewEchoClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-test", "yes")
	r, err := c.Echo(ctx, &echov1.EchoRequest{Message: "hi"})
	if err != nil || r.Pod != "echo-1" || r.Message != "hi" || r.Metadata["x-test"] != "yes" {
		t.Fatalf("Echo = %+v, %v", r, err)
	}
	_, err = c.Echo(ctx, &echov1.EchoRequest{FailCode: int32(codes.ResourceExhausted)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("fail_code: %v", err)
	}
	_, err = c.Echo(metadata.AppendToOutgoingContext(ctx, "x-echo-grpc-status", "14"), &echov1.EchoRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("x-echo-grpc-status 14: %v", err)
	}
}

func TestTCP(t *testing.T) {
	for _, first := range []bool{false, true} {
		s := start(t, first)
		c, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		if first {
			line, _ := r.ReadString('\n')
			if !strings.Contains(line, "hello from echo-1") {
				t.Errorf("server-first greeting = %q", line)
			}
		}
		c.Write([]byte("ping\n"))
		line, _ := r.ReadString('\n')
		if line != "ping\n" {
			t.Errorf("echo = %q", line)
		}
		c.Close()
	}
}
