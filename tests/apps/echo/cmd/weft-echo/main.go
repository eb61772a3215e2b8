// Command weft-echo is the test and demo application: an HTTP/1.1, h2c,
// gRPC and TCP echo server that reports who served a request and what it
// saw, and can delay or fail on request. See package tests/apps/echo.
//
// It is also a small HTTP client, so that a pod of the sandbox needs no
// curl:
//
//	weft-echo get [-X METHOD] [-H 'Name: value']... [--h2c] [--timeout 10s] URL
//
// prints the answer as one JSON object (status, proto, headers, and the
// echo server's reply or the body) and exits 0 whatever the status; it
// exits 1 when no HTTP response arrived.
//
//	weft-echo load [-n 100] [-c 4] [-rate 0] [-duration 0] [-timeout 10s] [-X METHOD]
//	               [-H 'Name: value']... [--h2c] [--grpc] [--no-keepalive] URL
//
// sends many requests (or gRPC Echo calls to URL's host:port) and prints
// the tally as one JSON object, an echo.LoadResult: status and gRPC code
// counts, replies per pod, latencies. It exits 0 however the requests
// fared, 1 when the run could not start.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/tests/apps/echo"
)

func main() {
	if len(os.Args) > 1 {
		if sub, ok := map[string]func([]string) error{"get": get, "load": load}[os.Args[1]]; ok {
			if err := sub(os.Args[2:]); errors.Is(err, flag.ErrHelp) {
				return
			} else if err != nil {
				fmt.Fprintf(os.Stderr, "weft-echo %s: %v\n", os.Args[1], err)
				os.Exit(1)
			}
			return
		}
	}
	cfg := echo.Config{}
	flag.StringVar(&cfg.Pod, "pod", envOr("POD_NAME", hostname()), "pod name to report")
	flag.StringVar(&cfg.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace to report")
	flag.StringVar(&cfg.Node, "node", os.Getenv("NODE_NAME"), "node name to report")
	flag.StringVar(&cfg.HTTPAddr, "http", ":8080", "HTTP/1.1 and h2c address; empty disables")
	flag.StringVar(&cfg.GRPCAddr, "grpc", ":9090", "gRPC address; empty disables")
	flag.StringVar(&cfg.TCPAddr, "tcp", ":7070", "TCP echo address; empty disables")
	flag.BoolVar(&cfg.ServerFirst, "server-first", false, "greet first on the TCP port")
	flag.Parse()
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	s, err := echo.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-echo:", err)
		os.Exit(1)
	}
	cfg.Log.Info("weft-echo serving", "pod", cfg.Pod, "http", cfg.HTTPAddr, "grpc", cfg.GRPCAddr, "tcp", cfg.TCPAddr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s.Close()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// headerFlag collects repeated -H 'Name: value' flags.
type headerFlag http.Header

func (h headerFlag) String() string { return "" }

func (h headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q: want 'Name: value'", v)
	}
	http.Header(h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

func get(args []string) error {
	req := echo.Request{Header: http.Header{}}
	fs := flag.NewFlagSet("weft-echo get", flag.ContinueOnError)
	fs.StringVar(&req.Method, "X", "GET", "request method")
	fs.Var(headerFlag(req.Header), "H", "request header 'Name: value' (repeatable; Host sets the authority)")
	fs.BoolVar(&req.H2C, "h2c", false, "HTTP/2 over cleartext with prior knowledge instead of HTTP/1.1")
	fs.DurationVar(&req.Timeout, "timeout", 0, "bound on the whole request (default 10s)")
	bodyOnly := fs.Bool("body", false, "print only the response body (any non-echo body, up to 64 KiB), as curl would")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: weft-echo get [-X METHOD] [-H 'Name: value']... [--h2c] [--timeout 10s] [--body] URL")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want one URL, got %d arguments", fs.NArg())
	}
	req.URL = fs.Arg(0)
	res, err := echo.Get(context.Background(), req)
	if err != nil {
		return err
	}
	if *bodyOnly && res.Reply == nil {
		_, err := io.WriteString(os.Stdout, res.Body)
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

func load(args []string) error {
	spec := echo.LoadSpec{Header: http.Header{}}
	fs := flag.NewFlagSet("weft-echo load", flag.ContinueOnError)
	fs.IntVar(&spec.Requests, "n", 100, "total requests (ignored with -duration)")
	fs.IntVar(&spec.Concurrency, "c", 4, "requests in flight at most")
	fs.Float64Var(&spec.Rate, "rate", 0, "total requests per second (0: as fast as possible)")
	fs.DurationVar(&spec.Duration, "duration", 0, "send requests for this long instead of -n")
	fs.DurationVar(&spec.Timeout, "timeout", 10*time.Second, "bound on each request")
	fs.StringVar(&spec.Method, "X", "GET", "request method")
	fs.Var(headerFlag(spec.Header), "H", "request header 'Name: value' (repeatable; Host sets the authority; gRPC metadata with --grpc)")
	fs.BoolVar(&spec.H2C, "h2c", false, "HTTP/2 over cleartext with prior knowledge instead of HTTP/1.1")
	fs.BoolVar(&spec.GRPC, "grpc", false, "call weft.echo.v1.Echo/Echo on URL's host:port instead of HTTP")
	fs.BoolVar(&spec.NoKeepAlive, "no-keepalive", false, "a new connection for every request")
	summary := fs.Bool("summary", false, "print one line (status and pod counts, p50/p99) instead of JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: weft-echo load [-n 100] [-c 4] [-rate 0] [-duration 0] [-timeout 10s] [-X METHOD] [-H 'Name: value']... [--h2c] [--grpc] [--no-keepalive] URL")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want one URL, got %d arguments", fs.NArg())
	}
	spec.URL = fs.Arg(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := echo.Load(ctx, spec)
	if res != nil && *summary {
		fmt.Println(res.Summary())
		return err
	}
	if res != nil {
		// Interrupted, the tally so far is still worth printing.
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	return err
}
