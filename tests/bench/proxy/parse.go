package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reported.
type wrkResult struct {
	Requests  int64
	Duration  time.Duration
	ReadBytes float64 // as wrk rounds it
	RPS       float64
	// SocketErrors adds connect, read, write and timeout errors.
	SocketErrors int64
	Non2xx       int64
}

var (
	wrkTotalRE  = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGT]?B) read`)
	wrkSocketRE = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xxRE = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkRPSRE    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
)

// parseWrk reads wrk's standard output.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkTotalRE.FindStringSubmatch(out)
	rps := wrkRPSRE.FindStringSubmatch(out)
	if m == nil || rps == nil {
		return r, fmt.Errorf("wrk output not understood: %q", out)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	d, _ := strconv.ParseFloat(m[2], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[m[3]]
	r.Duration = time.Duration(d * float64(unit))
	b, _ := strconv.ParseFloat(m[4], 64)
	r.ReadBytes = b * map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[m[5]]
	r.RPS, _ = strconv.ParseFloat(rps[1], 64)
	if s := wrkSocketRE.FindStringSubmatch(out); s != nil {
		for _, v := range s[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			r.SocketErrors += n
		}
	}
	if s := wrkNon2xxRE.FindStringSubmatch(out); s != nil {
		r.Non2xx, _ = strconv.ParseInt(s[1], 10, 64)
	}
	return r, nil
}

// fortioResult is the part of `fortio load -json -` the report uses.
type fortioResult struct {
	RequestedQPS      string
	ActualQPS         float64
	ActualDuration    int64 // ns
	DurationHistogram struct {
		Count       int64
		Avg         float64 // seconds
		Percentiles []struct {
			Percentile float64
			Value      float64 // seconds
		}
	}
	RetCodes map[string]int64
}

// latency is one fortio run, in microseconds.
type latency struct {
	QPS       int
	ActualQPS float64
	Count     int64
	P50       float64
	P90       float64
	P99       float64
	Avg       float64
	// Errors counts responses other than 200 and failed requests.
	Errors int64
	// Noise is the share of the machine's CPU that processes outside the
	// benchmark used during the run.
	Noise float64
}

// parseFortio reads fortio's JSON result.
func parseFortio(out []byte, qps int) (latency, error) {
	var f fortioResult
	// fortio may log before the JSON; it starts at the first '{' of a line.
	s := string(out)
	if i := strings.Index(s, "{\n"); i > 0 {
		s = s[i:]
	}
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return latency{}, fmt.Errorf("fortio output: %w: %.200q", err, out)
	}
	l := latency{QPS: qps, ActualQPS: f.ActualQPS, Count: f.DurationHistogram.Count, Avg: f.DurationHistogram.Avg * 1e6}
	for _, p := range f.DurationHistogram.Percentiles {
		switch p.Percentile {
		case 50:
			l.P50 = p.Value * 1e6
		case 90:
			l.P90 = p.Value * 1e6
		case 99:
			l.P99 = p.Value * 1e6
		}
	}
	if l.P50 == 0 || l.P99 == 0 {
		return l, fmt.Errorf("fortio output has no p50/p99 (ran with -p 50,90,99?)")
	}
	for code, n := range f.RetCodes {
		if code != "200" {
			l.Errors += n
		}
	}
	return l, nil
}

// accessEntry is a line of fortio's JSON access log.
type accessEntry struct {
	Latency float64 `json:"latency"` // seconds, to the microsecond
	OK      bool    `json:"ok"`
	Details string  `json:"details"` // the status code
}

// applyAccessLog replaces l's percentiles by exact ones computed from
// fortio's access log (fortio's own are interpolated in histogram
// buckets 50 to 100 µs wide around 0.5 ms) and counts failures.
func applyAccessLog(l *latency, log []byte) error {
	var lat []float64
	var errs int64
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		var e accessEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("fortio access log: %w: %q", err, sc.Bytes())
		}
		if !e.OK || e.Details != "200" {
			errs++
			continue
		}
		lat = append(lat, e.Latency*1e6)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(lat) == 0 {
		return fmt.Errorf("fortio access log: no successful request")
	}
	slices.Sort(lat)
	l.P50, l.P90, l.P99 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	l.Count, l.Errors = int64(len(lat))+errs, errs
	return nil
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

// userHZ is the unit of the CPU times in /proc (USER_HZ, 100 on every
// Linux architecture Go supports).
const userHZ = 100

// parseProcStat returns utime+stime from /proc/PID/stat.
func parseProcStat(b []byte) (time.Duration, error) {
	u, s, err := parseProcTimes(b)
	return u + s, err
}

// parseProcTimes returns utime and stime from /proc/PID/stat.
func parseProcTimes(b []byte) (user, sys time.Duration, err error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/PID/stat: no ')': %q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/PID/stat: %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/PID/stat: utime %q stime %q", f[11], f[12])
	}
	return time.Duration(ut) * time.Second / userHZ, time.Duration(st) * time.Second / userHZ, nil
}

// parseMachineBusy returns the CPU time all cores spent not idle, from
// the "cpu" line of /proc/stat.
func parseMachineBusy(b []byte) (time.Duration, error) {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q", line)
	}
	var busy uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q", line)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / userHZ, nil
}

// parseMemory returns VmRSS and VmHWM (bytes) from /proc/PID/status.
func parseMemory(b []byte) (rss, hwm int64, err error) {
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc/PID/status: %q", l)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/PID/status: %q", l)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("/proc/PID/status: no VmRSS or VmHWM")
	}
	return rss, hwm, nil
}
