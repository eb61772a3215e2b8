// Command proxy measures what the node proxies cost on the data path, in
// the one-machine sandbox (tests/sandbox): the same HTTP/1.1 traffic sent
// directly from pod to pod, and through two node proxies (the client pod's
// node proxy, an HBONE mTLS tunnel, the server pod's node proxy).
//
//	go run ./tests/bench/proxy                 # needs root on Linux
//	go run ./tests/bench/proxy -backend nginx  # the peers' backend
//	go run ./tests/bench/proxy -rounds 5 -d 20s -out /tmp/proxybench
//
// The sandbox has 2 nodes and, on each, a pod in the enrolled namespace
// "mesh" (mesh-n0, mesh-n1) and a pod in the plain namespace "plain"
// (plain-n0, plain-n1), each running weft-echo on :8080. The paths are
// (with -backend nginx the load goes to nginx in the same server pods, on
// ports 8090 and, declared HTTP, 8091; the path checks use both):
//
//	direct        plain-n0 -> plain-n1 pod IP :8080 (no proxy anywhere)
//	meshed L4     mesh-n0 -> Service web VIP, port tcp-web 8080 -> mesh-n1:8080;
//	              no appProtocol, so the server's node proxy splices the
//	              bytes (the main row)
//	meshed L7     mesh-n0 -> Service web-http VIP, port http 8081 (appProtocol
//	              http) -> a second weft-echo in mesh-n1 on :8081; the
//	              client's node proxy handles each request at L7 (route
//	              match, endpoint pick, retry budget, kept-alive upstream
//	              streams) and the server's parses it in place, adding
//	              X-Weft-Peer-Identity and checking L7 authorization
//	              (-http=false drops the row)
//	Go TLS relays plain-n0 -> a relay in node 0 -> mutual TLS, one
//	              connection per app connection -> a relay in node 1 ->
//	              plain-n1: the reference, PERFORMANCE.md's "stdlib Go TLS
//	              relay" peer rebuilt in the same topology (this program's
//	              hidden `relay` subcommand; -relay=false drops it)
//
// Each round runs, for every measurement, every path in turn, so the paths
// see the same machine; the report gives medians over rounds and ratios to
// direct from the same run:
//
//	max rps        wrk -t1 -c32 -d10s, HTTP/1.1 keep-alive
//	new conn/s     the same with -H 'Connection: close'
//	bulk MB/s      GET /?size=16MiB (nginx: a 16 MiB file) over one
//	               keep-alive connection, read by this program (from inside
//	               the client pod's namespace) with 256 KiB reads, so that
//	               the reader is cheap and the path is what limits; payload
//	               bytes (10^6) per second
//	latency        fortio load -qps N -c 16 -t 10s at 1,000 and 5,000 qps:
//	               p50, p90, p99, exact, from fortio's access log (its own
//	               percentiles are interpolated in wide histogram buckets)
//	proxy CPU      both node proxies' (or relays') utime+stime
//	               (/proc/PID/stat) over the max-rps and new-connection
//	               runs, per request
//	proxy memory   VmRSS and VmHWM of each node proxy at the end
//	noise          CPU time of the processes outside the sandbox during
//	               each run (the machine may be shared)
//
// After the rounds it profiles both node proxies (/debug/pprof/profile on
// their admin port) during one more max-rps, new-connection and bulk run
// of the meshed L4 path and writes the profiles and `go tool pprof -top` of
// each to the output directory, with the raw tool outputs, results.json
// and results.md.
//
// It builds the binaries from the working tree unless -bin is given, and
// installs wrk and fortio (hack/bench-tools.sh) when they are missing. The
// sandbox's node proxies log at debug level (a line per tunnelled
// connection); the harness restarts them at -proxy-log-level (info) first,
// as a production node would run. Everything is torn down at the end, on
// error and on Ctrl-C.
//
// See docs/performance.md for results.
package main
