//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/tests/sandbox"
)

// config is what the flags say.
type config struct {
	// Rounds of interleaved measurements; medians are over rounds.
	Rounds int
	// Duration of each load run.
	Duration time.Duration
	// Conns is wrk's connection count for max rps and new conn/s.
	Conns int
	// QPS are the fixed rates of the latency runs.
	QPS []int
	// LatencyConns is fortio's connection count.
	LatencyConns int
	// BulkSize is the response body of a bulk request, bytes.
	BulkSize int
	// BulkConns is how many connections read bulk responses at once.
	BulkConns int
	// HTTPRow adds the meshed L7 path (client-side L7, server-side identity header).
	HTTPRow bool
	// Tracing exports spans from both node proxies to an OTLP receiver
	// in node 0 (one that counts and discards them): the cost of tracing.
	Tracing bool
	// TracingRatio is the node proxies' --tracing-sampling-ratio.
	TracingRatio float64
	// RelayRow adds the reference path through two Go TLS relays.
	RelayRow bool
	// Backend is the server the load goes to: "echo" (weft-echo, Go
	// net/http) or "nginx" (Debian's, as PERFORMANCE.md's peers used).
	Backend string
	// MaxNoise is the share of the machine's CPU that processes outside
	// the benchmark may use during a run before it is repeated (up to
	// Retries times; the quietest attempt is kept).
	MaxNoise float64
	Retries  int
	// ProfileSeconds is the length of the CPU profiles; 0 takes none.
	ProfileSeconds int
	// ProfilePath names the path whose node proxies are profiled.
	ProfilePath string
	// ProxyLogLevel restarts the node proxies at this level; empty keeps
	// the sandbox's (debug).
	ProxyLogLevel string
	// BinDir holds the weft binaries; empty builds them into Out/bin.
	BinDir string
	// Out receives raw outputs, profiles and results; empty makes a new
	// temporary directory.
	Out string
	// Wrk and Fortio are the load tools; empty finds them (and installs
	// them when missing).
	Wrk, Fortio string
	// Name is the sandbox's name.
	Name string
}

func (c *config) validate() error {
	switch {
	case c.Rounds < 1:
		return fmt.Errorf("-rounds %d: want at least 1", c.Rounds)
	case c.Duration < time.Second:
		return fmt.Errorf("-d %s: want at least 1s", c.Duration)
	case c.Conns < 1 || c.LatencyConns < 1 || c.BulkConns < 1:
		return errors.New("-c, -latency-c and -bulk-c must be at least 1")
	case c.BulkSize < 1<<10 || c.BulkSize > 1<<30:
		return fmt.Errorf("-bulk-size %d: want 1 KiB to 1 GiB", c.BulkSize)
	case c.Backend != backendEcho && c.Backend != backendNginx:
		return fmt.Errorf("-backend %q: want %s or %s", c.Backend, backendEcho, backendNginx)
	case c.Retries < 0 || c.MaxNoise < 0:
		return errors.New("-retries and -max-noise must not be negative")
	case c.ProfilePath != "meshed L4" && (c.ProfilePath != "meshed L7" || !c.HTTPRow):
		return fmt.Errorf(`-profile-path %q: want "meshed L4", or "meshed L7" with -http`, c.ProfilePath)
	case c.ProfileSeconds < 0:
		return fmt.Errorf("-profile %d: want 0 or more", c.ProfileSeconds)
	}
	for _, q := range c.QPS {
		if q < 1 {
			return fmt.Errorf("-qps %d: want at least 1", q)
		}
	}
	return nil
}

type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	*l = nil
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		*l = append(*l, n)
	}
	return nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "relay" {
		if err := runRelay(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		return
	}
	c := config{QPS: []int{1000, 5000}}
	flag.IntVar(&c.Rounds, "rounds", 3, "interleaved rounds (direct, meshed, direct, meshed, ...)")
	flag.DurationVar(&c.Duration, "d", 10*time.Second, "length of each load run")
	flag.IntVar(&c.Conns, "c", 32, "wrk connections for max rps and new conn/s")
	flag.Var((*intList)(&c.QPS), "qps", "comma-separated rates of the fortio latency runs")
	flag.IntVar(&c.LatencyConns, "latency-c", 16, "fortio connections")
	flag.IntVar(&c.BulkSize, "bulk-size", 16<<20, "bytes of body per bulk response")
	flag.IntVar(&c.BulkConns, "bulk-c", 1, "connections reading bulk responses at once")
	flag.Float64Var(&c.TracingRatio, "tracing-ratio", 1, "with -tracing: the share of requests traced (--tracing-sampling-ratio)")
	flag.BoolVar(&c.Tracing, "tracing", false, "run the node proxies with tracing on, exporting every span over OTLP/gRPC to a receiver in node 0")
	flag.BoolVar(&c.HTTPRow, "http", true, "also measure the meshed L7 path (the client node proxy handles each request at L7; the server node proxy adds the identity header)")
	flag.BoolVar(&c.RelayRow, "relay", true, "also measure a reference path through two stdlib Go TLS relays (one mTLS connection per app connection), the peers' design")
	flag.StringVar(&c.Backend, "backend", backendEcho, "server in the server pods: echo (weft-echo, which the sandbox runs) or nginx (Debian's, like the peers' measurements in PERFORMANCE.md)")
	flag.Float64Var(&c.MaxNoise, "max-noise", 0.10, "repeat a run when processes outside the benchmark used more than this share of the machine's CPU during it")
	flag.IntVar(&c.Retries, "retries", 2, "how many times a noisy run is repeated at most (the quietest attempt is kept)")
	flag.StringVar(&c.ProfilePath, "profile-path", "meshed L4", `the path profiled: "meshed L4" or "meshed L7"`)
	flag.IntVar(&c.ProfileSeconds, "profile", 10, "seconds of CPU profile of both node proxies after the rounds; 0 for none")
	flag.StringVar(&c.ProxyLogLevel, "proxy-log-level", "info", "restart the node proxies at this log level; empty keeps the sandbox's debug")
	flag.StringVar(&c.BinDir, "bin", "", "directory with weft-control-plane, weft-node-proxy, weft-cni, weft-echo; empty builds them from the working tree")
	flag.StringVar(&c.Out, "out", "", "output directory (raw outputs, profiles, results.json, results.md); empty makes one in $TMPDIR")
	flag.StringVar(&c.Wrk, "wrk", "", "wrk binary; empty finds or installs it")
	flag.StringVar(&c.Fortio, "fortio", "", "fortio binary; empty finds or installs it")
	flag.StringVar(&c.Name, "name", "pbench", "sandbox name")
	flag.Parse()
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "proxy bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "proxy bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, c config) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if c.Out == "" {
		if c.Out, err = os.MkdirTemp("", "weft-bench-proxy-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return err
	}
	if c.Out, err = filepath.Abs(c.Out); err != nil {
		return err
	}
	logf("output in %s", c.Out)
	tools, err := findTools(ctx, root, c.Wrk, c.Fortio, c.Backend == backendNginx)
	if err != nil {
		return err
	}
	var m Meta
	gitState(ctx, &m, root)
	if c.BinDir == "" {
		c.BinDir = filepath.Join(c.Out, "bin")
		logf("building the binaries from %s into %s", root, c.BinDir)
		if err := sandbox.BuildBinaries(c.BinDir, sandbox.MeshBinaries...); err != nil {
			return err
		}
	}

	b, err := setUp(ctx, c, tools)
	if err != nil {
		return err
	}
	defer func() {
		logf("tearing the sandbox down")
		if derr := b.down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("down: %w", derr))
		}
	}()

	res, err := b.measure(ctx)
	if err != nil {
		return err
	}
	m.LoadAvgStart = res.Meta.LoadAvgStart
	res.Meta = m
	fillMeta(ctx, &res.Meta, c, tools)
	return res.write(c.Out, os.Stdout)
}
