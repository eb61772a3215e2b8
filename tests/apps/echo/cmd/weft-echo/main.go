// Command weft-echo is the test and demo application: an HTTP/1.1, h2c,
// gRPC and TCP echo server that reports who served a request and what it
// saw, and can delay or fail on request. See package tests/apps/echo.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/weftmesh/weft/tests/apps/echo"
)

func main() {
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
