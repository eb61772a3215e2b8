package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Results is everything one run measured; results.json holds it.
type Results struct {
	Meta     Meta
	Paths    []PathResult
	Proxies  []ProxyMemory
	Profiles []Profile
}

// Meta says where and how the run happened.
type Meta struct {
	Date, Command, Commit string
	// Dirty lists uncommitted changes under node-proxy/ and control-plane/
	// (git status --porcelain): the binaries were built from them.
	Dirty                    string
	Kernel, CPUModel, Go     string
	CPUs                     int
	Wrk, Fortio, Nginx       string
	Backend                  string
	LoadAvgStart, LoadAvgEnd string // 1, 5 and 15 minute load averages
	Rounds                   int
	Duration                 string
	Conns, LatencyConns      int
	BulkSize, BulkConns      int
	ProxyLogLevel            string
	ProfileSeconds           int
	MaxNoise                 float64
	Retries                  int
}

// PathResult is one path's rounds.
type PathResult struct {
	Name   string
	Meshed bool
	URL    string
	Rounds []Round
}

// Round is one path's measurements in one round.
type Round struct {
	MaxRPS   Run
	NewConns Run
	Bulk     Run
	Latency  []latency
}

// Run is one load run.
type Run struct {
	// Rate is requests (or connections) per second; for bulk, payload
	// MB/s (10^6 bytes).
	Rate     float64
	Requests int64
	Bytes    int64 // bulk only
	Seconds  float64
	// Errors adds socket errors and non-2xx answers.
	Errors int64
	// ProxyCPU is each node proxy's utime+stime over the run, seconds,
	// in node order (client side, server side).
	ProxyCPU []float64
	// ProxyUserCPU is the utime part of ProxyCPU.
	ProxyUserCPU []float64
	// MachineCPU is the busy time of all cores over the run, seconds.
	MachineCPU float64
	// OtherCPU is the CPU time, seconds, that processes outside the
	// sandbox (other than this program) used during the run: the noise.
	// Processes that started and ended within the run are missed.
	OtherCPU float64
	// Noise is OtherCPU as a share of the machine's CPU time over the run.
	Noise float64
}

// ProxyMemory is a node proxy's memory at the end of the run.
type ProxyMemory struct {
	Node, Role string
	RSS, HWM   int64 // bytes
}

// Profile is a CPU profile of a node proxy.
type Profile struct {
	Node, Role, File string
	Run              string // "max rps" or "bulk"
	Top              string // go tool pprof -top, first lines
}

// summary is a path's medians over rounds.
type summary struct {
	maxRPS, newConns, bulk float64
	p50, p90, p99          map[int]float64 // by requested qps, µs
	actualQPS              map[int]float64
	cpuPerReq              []float64 // µs per request over max rps, per proxy
	userPerReq             []float64 // the utime part of cpuPerReq
	cpuPerConn             []float64 // µs per connection over new conns, per proxy
	machinePerReq          float64   // µs per request over max rps
	machinePerConn         float64
	errors                 int64
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (p PathResult) summarize() summary {
	s := summary{p50: map[int]float64{}, p90: map[int]float64{}, p99: map[int]float64{}, actualQPS: map[int]float64{}}
	col := func(f func(Round) float64) float64 {
		var v []float64
		for _, r := range p.Rounds {
			v = append(v, f(r))
		}
		return median(v)
	}
	s.maxRPS = col(func(r Round) float64 { return r.MaxRPS.Rate })
	s.newConns = col(func(r Round) float64 { return r.NewConns.Rate })
	s.bulk = col(func(r Round) float64 { return r.Bulk.Rate })
	perReq := func(r Run, cpu float64) float64 {
		if r.Requests == 0 {
			return math.NaN()
		}
		return cpu / float64(r.Requests) * 1e6
	}
	if len(p.Rounds) > 0 {
		for i := range p.Rounds[0].MaxRPS.ProxyCPU {
			s.cpuPerReq = append(s.cpuPerReq, col(func(r Round) float64 { return perReq(r.MaxRPS, r.MaxRPS.ProxyCPU[i]) }))
			s.userPerReq = append(s.userPerReq, col(func(r Round) float64 { return perReq(r.MaxRPS, r.MaxRPS.ProxyUserCPU[i]) }))
			s.cpuPerConn = append(s.cpuPerConn, col(func(r Round) float64 { return perReq(r.NewConns, r.NewConns.ProxyCPU[i]) }))
		}
		for i, l := range p.Rounds[0].Latency {
			q := l.QPS
			s.p50[q] = col(func(r Round) float64 { return r.Latency[i].P50 })
			s.p90[q] = col(func(r Round) float64 { return r.Latency[i].P90 })
			s.p99[q] = col(func(r Round) float64 { return r.Latency[i].P99 })
			s.actualQPS[q] = col(func(r Round) float64 { return r.Latency[i].ActualQPS })
		}
	}
	s.machinePerReq = col(func(r Round) float64 { return perReq(r.MaxRPS, r.MaxRPS.MachineCPU) })
	s.machinePerConn = col(func(r Round) float64 { return perReq(r.NewConns, r.NewConns.MachineCPU) })
	for _, r := range p.Rounds {
		s.errors += r.MaxRPS.Errors + r.NewConns.Errors + r.Bulk.Errors
		for _, l := range r.Latency {
			s.errors += l.Errors
		}
	}
	return s
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}

// Targets of Step 3, as ratios to direct, and the peers' smallest added
// latency at 1,000 qps (PERFORMANCE.md), which the meshed L4 path must
// beat.
const (
	targetMaxRPS   = 0.30
	targetNewConns = 0.20
	targetBulk     = 0.45
	peerAddedP50   = 550.0 // µs
	peerAddedP99   = 900.0 // µs
)

func metMark(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// write stores results.json and results.md in dir and prints the latter.
func (r *Results) write(dir string, w io.Writer) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), js, 0o644); err != nil {
		return err
	}
	var b strings.Builder
	r.markdown(&b)
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func (r *Results) markdown(w *strings.Builder) {
	m := r.Meta
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("%s: backend %s; %d interleaved rounds, medians. Commit %s", m.Date, m.Backend, m.Rounds, m.Commit)
	if m.Dirty != "" {
		p(" with uncommitted changes in %s", strings.Join(strings.Fields(strings.ReplaceAll(m.Dirty, "\n", " ")), " "))
	}
	p(". %d × %s, Linux %s, %s. Load average %s at the start, %s at the end.\n\n", m.CPUs, m.CPUModel, m.Kernel, m.Go, m.LoadAvgStart, m.LoadAvgEnd)
	p("Command: `%s`\n\n", m.Command)
	var noise []float64
	for _, path := range r.Paths {
		for _, rd := range path.Rounds {
			noise = append(noise, rd.MaxRPS.Noise, rd.NewConns.Noise, rd.Bulk.Noise)
			for _, l := range rd.Latency {
				noise = append(noise, l.Noise)
			}
		}
	}
	if len(noise) > 0 {
		p("Processes outside the benchmark used %.0f%% of the machine's CPU during the median run, %.0f%% during the noisiest (a run is repeated up to %d times while they use more than %.0f%%; the quietest attempt is kept).\n\n",
			100*median(noise), 100*slices.Max(noise), m.Retries, 100*m.MaxNoise)
	}

	var sums []summary
	for _, path := range r.Paths {
		sums = append(sums, path.summarize())
	}
	var qps []int
	if len(r.Paths) > 0 && len(r.Paths[0].Rounds) > 0 {
		for _, l := range r.Paths[0].Rounds[0].Latency {
			qps = append(qps, l.QPS)
		}
	}

	p("| path | max rps | new conn/s | bulk MB/s |")
	for _, q := range qps {
		p(" p50 / p90 / p99 at %s qps (µs) |", thousands(float64(q)))
	}
	p("\n| --- | --- | --- | --- |%s\n", strings.Repeat(" --- |", len(qps)))
	for i, path := range r.Paths {
		s := sums[i]
		p("| %s | %s | %s | %s |", path.Name, thousands(s.maxRPS), thousands(s.newConns), thousands(s.bulk))
		for _, q := range qps {
			p(" %s / %s / %s", thousands(s.p50[q]), thousands(s.p90[q]), thousands(s.p99[q]))
			if a := s.actualQPS[q]; a < 0.97*float64(q) {
				p(" (only %s qps)", thousands(a))
			}
			p(" |")
		}
		p("\n")
	}

	if len(sums) > 1 {
		d := sums[0]
		p("\nRatios to direct (same run) and the targets:\n\n")
		p("| path | max rps (≥ %.2f) | new conn/s (≥ %.2f) | bulk (≥ %.2f) |", targetMaxRPS, targetNewConns, targetBulk)
		for _, q := range qps {
			p(" added p50 / p99 at %s qps |", thousands(float64(q)))
		}
		p(" proxy pair CPU per request | per new connection |\n| --- | --- | --- | --- |%s --- | --- |\n", strings.Repeat(" --- |", len(qps)))
		for i := 1; i < len(sums); i++ {
			s := sums[i]
			rr, rc, rb := s.maxRPS/d.maxRPS, s.newConns/d.newConns, s.bulk/d.bulk
			if r.Paths[i].Meshed {
				p("| %s | %.2f (%s) | %.2f (%s) | %.2f (%s) |", r.Paths[i].Name, rr, metMark(rr >= targetMaxRPS), rc, metMark(rc >= targetNewConns), rb, metMark(rb >= targetBulk))
			} else {
				p("| %s (reference) | %.2f | %.2f | %.2f |", r.Paths[i].Name, rr, rc, rb)
			}
			for k, q := range qps {
				a50, a99 := s.p50[q]-d.p50[q], s.p99[q]-d.p99[q]
				p(" %s / %s µs", signed(a50), signed(a99))
				if k == 0 && i == 1 {
					p(" (%s)", metMark(a50 < peerAddedP50 && a99 < peerAddedP99))
				}
				p(" |")
			}
			p(" %.1f µs | %.0f µs |\n", sum(s.cpuPerReq), sum(s.cpuPerConn))
		}

		p("\nThe proxies' CPU (utime+stime from /proc/PID/stat over the max-rps and new-connection runs: the node proxies, or for the reference row the relays) and the whole machine's busy CPU over the same runs:\n\n")
		p("| path | client-side proxy µs/request (user) | server-side proxy µs/request (user) | pair per 100k requests | machine µs/request | client-side µs/new conn | server-side µs/new conn | machine µs/new conn |\n")
		p("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for i, path := range r.Paths {
			s := sums[i]
			if len(s.cpuPerReq) < 2 {
				continue
			}
			p("| %s | %.1f (%.1f) | %.1f (%.1f) | %.2f s | %.1f | %.0f | %.0f | %.0f |\n", path.Name, s.cpuPerReq[0], s.userPerReq[0], s.cpuPerReq[1], s.userPerReq[1],
				sum(s.cpuPerReq)/10, s.machinePerReq, s.cpuPerConn[0], s.cpuPerConn[1], s.machinePerConn)
		}
	}

	if len(r.Proxies) > 0 {
		p("\n| node proxy | VmRSS at the end | VmHWM (peak) |\n| --- | --- | --- |\n")
		for _, x := range r.Proxies {
			p("| %s (%s side) | %.1f MiB | %.1f MiB |\n", x.Node, x.Role, float64(x.RSS)/(1<<20), float64(x.HWM)/(1<<20))
		}
	}

	p("\nPer round (max rps; new conn/s; bulk MB/s; p50 µs at each rate; the share of the 2 cores that processes outside the benchmark used during the max-rps run):\n\n```\n")
	for _, path := range r.Paths {
		for k, rd := range path.Rounds {
			p("%-12s round %d: %8s rps; %7s conn/s; %6s MB/s;", path.Name, k+1, thousands(rd.MaxRPS.Rate), thousands(rd.NewConns.Rate), thousands(rd.Bulk.Rate))
			p(" others %2.0f%%;", 100*rd.MaxRPS.Noise)
			for _, l := range rd.Latency {
				p(" p50 %s @%s", thousands(l.P50), thousands(float64(l.QPS)))
			}
			if e := rd.MaxRPS.Errors + rd.NewConns.Errors + rd.Bulk.Errors; e > 0 {
				p("  ERRORS %d", e)
			}
			p("\n")
		}
	}
	p("```\n")
	for i, s := range sums {
		if s.errors > 0 {
			p("\n**%s: %d errors** (socket errors, non-2xx answers or failed requests): see the raw outputs.\n", r.Paths[i].Name, s.errors)
		}
	}

	for _, pr := range r.Profiles {
		p("\nCPU profile of the %s-side node proxy (%s) during a %s run of the meshed L4 path (%s):\n\n```\n%s```\n", pr.Role, pr.Node, pr.Run, pr.File, pr.Top)
	}
}

// thousands formats v rounded, with thousands separators.
func thousands(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func signed(v float64) string {
	if v >= 0 {
		return "+" + thousands(v)
	}
	return thousands(v)
}
