//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// measure runs the rounds, then the profiles, and reads the proxies'
// memory.
func (b *bench) measure(ctx context.Context) (*Results, error) {
	raw := filepath.Join(b.c.Out, "raw")
	if err := os.MkdirAll(raw, 0o755); err != nil {
		return nil, err
	}
	res := &Results{}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.Meta.LoadAvgStart = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	for _, p := range b.paths {
		res.Paths = append(res.Paths, PathResult{Name: p.Name, Meshed: p.Meshed, URL: p.URL, Rounds: make([]Round, b.c.Rounds)})
	}

	logf("warming up every path (3s keep-alive, 3s new connections)")
	for _, p := range b.paths {
		for _, close := range []bool{false, true} {
			r, err := b.wrk(ctx, p, 3*time.Second, close, filepath.Join(raw, "warmup-"+slug(p.Name)+map[bool]string{true: "-close"}[close]+".txt"))
			if err != nil {
				return nil, err
			}
			if r.Errors > 0 {
				logf("!!! warm-up of %s: %d errors", p.Name, r.Errors)
			}
		}
	}

	// A step runs one measurement of one path; its result goes into a
	// Round by keep. noise is the share of the machine that processes
	// outside the benchmark used meanwhile.
	type attempt struct {
		noise float64
		keep  func(*Round)
	}
	type step struct {
		name string
		run  func(p path, file string) (attempt, error)
	}
	wrkStep := func(newConns bool) func(path, string) (attempt, error) {
		return func(p path, file string) (attempt, error) {
			r, err := b.wrk(ctx, p, b.c.Duration, newConns, file)
			return attempt{r.Noise, func(rd *Round) {
				if newConns {
					rd.NewConns = r
				} else {
					rd.MaxRPS = r
				}
			}}, err
		}
	}
	steps := []step{
		{"max rps", wrkStep(false)},
		{"new conn/s", wrkStep(true)},
		{"bulk", func(p path, file string) (attempt, error) {
			r, err := b.bulk(ctx, p, b.c.Duration)
			return attempt{r.Noise, func(rd *Round) { rd.Bulk = r }}, err
		}},
	}
	for k, q := range b.c.QPS {
		steps = append(steps, step{fmt.Sprintf("latency at %d qps", q), func(p path, file string) (attempt, error) {
			l, err := b.fortio(ctx, p, q, file)
			return attempt{l.Noise, func(rd *Round) {
				if len(rd.Latency) < len(b.c.QPS) {
					rd.Latency = make([]latency, len(b.c.QPS))
				}
				rd.Latency[k] = l
			}}, err
		}})
	}

	for round := range b.c.Rounds {
		for _, st := range steps {
			for i, p := range b.paths {
				best := attempt{noise: math.Inf(1)}
				for try := 0; try <= b.c.Retries; try++ {
					name := fmt.Sprintf("r%d-%s-%s", round+1, slug(st.name), slug(p.Name))
					if try > 0 {
						name += fmt.Sprintf("-retry%d", try)
					}
					a, err := st.run(p, filepath.Join(raw, name+".txt"))
					if err != nil {
						return nil, fmt.Errorf("round %d, %s, %s: %w", round+1, st.name, p.Name, err)
					}
					if a.noise < best.noise {
						best = a
					}
					if a.noise <= b.c.MaxNoise {
						break
					}
					logf("round %d, %s, %s: other processes used %.0f%% of the machine%s", round+1, st.name, p.Name, 100*a.noise,
						map[bool]string{true: ": again", false: "; keeping the quietest attempt"}[try < b.c.Retries])
				}
				best.keep(&res.Paths[i].Rounds[round])
			}
			logf("round %d/%d: %-18s %s", round+1, b.c.Rounds, st.name, b.line(res, round, st.name))
		}
	}

	if b.c.ProfileSeconds > 0 {
		for _, kind := range []string{"max rps", "new conn/s", "bulk"} {
			profs, err := b.profile(ctx, b.path(b.c.ProfilePath), kind)
			if err != nil {
				return nil, err
			}
			res.Profiles = append(res.Profiles, profs...)
		}
	}
	for _, pp := range b.proxies {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pp.PID))
		if err != nil {
			return nil, fmt.Errorf("node proxy on %s: %w", pp.Node, err)
		}
		rss, hwm, err := parseMemory(st)
		if err != nil {
			return nil, err
		}
		res.Proxies = append(res.Proxies, ProxyMemory{Node: pp.Node, Role: pp.Role, RSS: rss, HWM: hwm})
	}
	return res, nil
}

func (b *bench) path(name string) path {
	for _, p := range b.paths {
		if p.Name == name {
			return p
		}
	}
	panic("no path " + name)
}

// line is a progress line: the step's value for every path this round.
func (b *bench) line(res *Results, round int, step string) string {
	var parts []string
	for _, p := range res.Paths {
		rd := p.Rounds[round]
		var v string
		switch {
		case step == "max rps":
			v = thousands(rd.MaxRPS.Rate) + " rps"
		case step == "new conn/s":
			v = thousands(rd.NewConns.Rate) + " conn/s"
		case step == "bulk":
			v = thousands(rd.Bulk.Rate) + " MB/s"
		default:
			var l latency
			for _, x := range rd.Latency {
				if fmt.Sprintf("latency at %d qps", x.QPS) == step {
					l = x
				}
			}
			v = fmt.Sprintf("p50 %s p99 %s µs", thousands(l.P50), thousands(l.P99))
		}
		parts = append(parts, p.Name+" "+v)
	}
	return strings.Join(parts, ", ")
}

// cpuMeter samples the node proxies' and the machine's CPU time, and
// that of the processes outside the sandbox.
type cpuMeter struct {
	proxies, proxiesUser []time.Duration
	machine              time.Duration
	others               map[int]time.Duration // by pid
}

func sampleCPU(procs []proxyProc) (cpuMeter, error) {
	m := cpuMeter{others: otherProcesses()}
	for _, pp := range procs {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pp.PID))
		if err != nil {
			return m, fmt.Errorf("proxy on %s (pid %d) is gone: %w", pp.Node, pp.PID, err)
		}
		u, s, err := parseProcTimes(st)
		if err != nil {
			return m, err
		}
		m.proxies = append(m.proxies, u+s)
		m.proxiesUser = append(m.proxiesUser, u)
	}
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m, err
	}
	m.machine, err = parseMachineBusy(st)
	return m, err
}

// otherProcesses returns the CPU time of every process in this program's
// network namespace (the host's) other than itself: everything on the
// machine that is not part of the benchmark.
func otherProcesses() map[int]time.Duration {
	self := os.Getpid()
	myNet, _ := os.Readlink("/proc/self/ns/net")
	out := map[int]time.Duration{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil || ns != myNet {
			continue // gone, a kernel thread, or inside the sandbox
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if t, err := parseProcStat(st); err == nil {
			out[pid] = t
		}
	}
	return out
}

// measureCPU fills r's CPU fields from two samples.
func (r *Run) measureCPU(before, after cpuMeter) {
	for i := range before.proxies {
		r.ProxyCPU = append(r.ProxyCPU, (after.proxies[i] - before.proxies[i]).Seconds())
		r.ProxyUserCPU = append(r.ProxyUserCPU, (after.proxiesUser[i] - before.proxiesUser[i]).Seconds())
	}
	r.MachineCPU = (after.machine - before.machine).Seconds()
	r.OtherCPU = othersDelta(before.others, after.others).Seconds()
	if r.Seconds > 0 {
		r.Noise = r.OtherCPU / r.Seconds / float64(runtime.NumCPU())
	}
}

// othersDelta is the CPU time processes outside the benchmark used between
// two samples of otherProcesses.
func othersDelta(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range after {
		d += t - before[pid] // a process started meanwhile counts whole
	}
	return d
}

// wrk runs wrk -t1 in p's client pod, keep-alive or with a new connection
// per request, and keeps its output in file.
func (b *bench) wrk(ctx context.Context, p path, d time.Duration, newConns bool, file string) (Run, error) {
	argv := []string{b.t.wrk, "-t1", "-c" + strconv.Itoa(b.c.Conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s"}
	if newConns {
		argv = append(argv, "-H", "Connection: close")
	}
	argv = append(argv, p.URL)
	before, err := sampleCPU(p.procs)
	if err != nil {
		return Run{}, err
	}
	out, err := b.m.Exec(ctx, p.Client, argv...)
	after, cerr := sampleCPU(p.procs)
	_ = os.WriteFile(file, []byte(strings.Join(argv, " ")+"\n"+string(out)), 0o644)
	if err = errors.Join(err, cerr); err != nil {
		return Run{}, err
	}
	w, err := parseWrk(string(out))
	if err != nil {
		return Run{}, err
	}
	r := Run{Rate: w.RPS, Requests: w.Requests, Seconds: w.Duration.Seconds(), Errors: w.SocketErrors + w.Non2xx}
	r.measureCPU(before, after)
	if r.Errors > 0 {
		logf("!!! %s: %d socket errors, %d non-2xx answers (%s)", p.Name, w.SocketErrors, w.Non2xx, file)
	}
	return r, nil
}

// fortio runs fortio load at qps in p's client pod and computes exact
// percentiles from its access log.
func (b *bench) fortio(ctx context.Context, p path, qps int, file string) (latency, error) {
	access := strings.TrimSuffix(file, ".txt") + "-access.jsonl"
	_ = os.Remove(access)
	argv := []string{b.t.fortio, "load", "-qps", strconv.Itoa(qps), "-c", strconv.Itoa(b.c.LatencyConns),
		"-t", b.c.Duration.String(), "-p", "50,90,99", "-r", "0.00001", "-loglevel", "Warning",
		"-access-log-file", access, "-access-log-format", "json", "-json", "-", p.URL}
	others, start := otherProcesses(), time.Now()
	out, err := b.m.Exec(ctx, p.Client, argv...)
	noise := othersDelta(others, otherProcesses()).Seconds() / time.Since(start).Seconds() / float64(runtime.NumCPU())
	_ = os.WriteFile(strings.TrimSuffix(file, ".txt")+".json", out, 0o644)
	if err != nil {
		return latency{}, err
	}
	l, err := parseFortio(out, qps)
	if err != nil {
		return l, err
	}
	log, err := os.ReadFile(access)
	if err != nil {
		return l, err
	}
	if err := applyAccessLog(&l, log); err != nil {
		return l, err
	}
	_ = os.Remove(access) // large; results.json keeps the percentiles
	l.Noise = noise
	if l.Errors > 0 {
		logf("!!! %s at %d qps: %d failed requests (%s)", p.Name, qps, l.Errors, file)
	}
	return l, nil
}

// bulkBuf is the read size of the bulk client: large, so that reading
// costs the client little and the path is what limits.
const bulkBuf = 256 << 10

// bulk reads responses of BulkSize bytes (p.BulkURL) over BulkConns
// keep-alive connections made inside p's client pod (so a meshed pod's
// connections are captured by its node proxy) for d, and reports payload
// MB/s.
func (b *bench) bulk(ctx context.Context, p path, d time.Duration) (Run, error) {
	pod, _ := b.m.Pod(p.Client)
	cl := nsClient(pod.NetNSPath, b.c.BulkConns)
	defer cl.CloseIdleConnections()
	url := p.BulkURL
	// Open the connections before the clock starts.
	for range b.c.BulkConns {
		if _, err := b.readBulk(ctx, cl, p.URL); err != nil {
			return Run{}, err
		}
	}
	before, err := sampleCPU(p.procs)
	if err != nil {
		return Run{}, err
	}
	start := time.Now()
	rctx, cancel := context.WithDeadline(ctx, start.Add(d))
	defer cancel()
	var total, reqs, errs atomic.Int64
	var wg sync.WaitGroup
	for range b.c.BulkConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rctx.Err() == nil {
				n, err := b.readBulk(rctx, cl, url)
				total.Add(n)
				if err == nil {
					reqs.Add(1)
				} else if rctx.Err() == nil {
					errs.Add(1)
					logf("!!! bulk on %s: %v", p.Name, err)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	after, err := sampleCPU(p.procs)
	if err != nil {
		return Run{}, err
	}
	if ctx.Err() != nil {
		return Run{}, ctx.Err()
	}
	r := Run{Rate: float64(total.Load()) / elapsed.Seconds() / 1e6, Requests: reqs.Load(), Bytes: total.Load(),
		Seconds: elapsed.Seconds(), Errors: errs.Load()}
	r.measureCPU(before, after)
	return r, nil
}

// readBulk GETs url and reads the body; it returns the bytes read, even
// when the context ends the read.
func (b *bench) readBulk(ctx context.Context, cl *http.Client, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	buf := bulkBufs.Get().(*[]byte)
	defer bulkBufs.Put(buf)
	var n int64
	for {
		k, err := resp.Body.Read(*buf)
		n += int64(k)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
	}
}

var bulkBufs = sync.Pool{New: func() any { b := make([]byte, bulkBuf); return &b }}

// profile takes a CPU profile of both node proxies during a run of p of
// kind "max rps", "new conn/s" or "bulk", and summarises each with go tool
// pprof -top.
func (b *bench) profile(ctx context.Context, p path, kind string) ([]Profile, error) {
	secs := b.c.ProfileSeconds
	logf("profiling both node proxies for %ds during a %s run of %s", secs, kind, p.Name)
	type got struct {
		body []byte
		err  error
	}
	results := make([]got, len(b.proxies))
	var wg sync.WaitGroup
	wrkDone := make(chan error, 1)
	go func() {
		d := time.Duration(secs+2) * time.Second
		var r Run
		var err error
		if kind == "bulk" {
			r, err = b.bulk(ctx, p, d)
		} else {
			r, err = b.wrk(ctx, p, d, kind == "new conn/s", filepath.Join(b.c.Out, "raw", "profile-"+slug(kind)+"-wrk.txt"))
		}
		if err == nil {
			logf("profiled run: %s %s", thousands(r.Rate), map[bool]string{true: "MB/s", false: "per second"}[kind == "bulk"])
		}
		wrkDone <- err
	}()
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	nodes := b.m.Nodes()
	for i := range b.proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, time.Duration(secs+15)*time.Second)
			defer cancel()
			body, err := httpGet(pctx, nodes[i].NetNSPath, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", adminAddr, secs))
			results[i] = got{body, err}
		}()
	}
	wg.Wait()
	if err := <-wrkDone; err != nil {
		return nil, err
	}
	var out []Profile
	for i, pp := range b.proxies {
		if results[i].err != nil {
			return nil, fmt.Errorf("profile of the node proxy on %s: %w", pp.Node, results[i].err)
		}
		file := filepath.Join(b.c.Out, fmt.Sprintf("cpu-%s-%s-%s.pprof", slug(kind), pp.Role, pp.Node))
		if err := os.WriteFile(file, results[i].body, 0o644); err != nil {
			return nil, err
		}
		top := ""
		for _, mode := range []string{"flat", "cum"} {
			args := []string{"tool", "pprof", "-top", "-nodecount=40"}
			if mode == "cum" {
				args = append(args, "-cum")
			}
			cmd := exec.CommandContext(ctx, "go", append(args, file)...)
			cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
			txt, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("go tool pprof %s: %w", file, err)
			}
			if err := os.WriteFile(strings.TrimSuffix(file, ".pprof")+"-top-"+mode+".txt", txt, 0o644); err != nil {
				return nil, err
			}
			if mode == "flat" {
				lines := strings.SplitAfter(string(txt), "\n")
				top = strings.Join(lines[:min(len(lines), 31)], "")
			}
		}
		out = append(out, Profile{Node: pp.Node, Role: pp.Role, Run: kind, File: file, Top: top})
	}
	return out, nil
}

// slug makes a file-name part of a label.
func slug(s string) string {
	return strings.NewReplacer(" ", "-", "/", "-").Replace(strings.ToLower(s))
}
