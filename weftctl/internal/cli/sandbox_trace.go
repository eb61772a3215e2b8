package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/node-proxy/netns"
	"github.com/weftmesh/weft/tests/otlpsink"
	"github.com/weftmesh/weft/tests/sandbox"
)

// sandboxTracing is `sandbox up --tracing`: an OTLP receiver in node 0's
// network namespace that the node proxies export to, which appends every
// span to spans.jsonl in the sandbox's state directory and, with
// --otlp-endpoint, forwards each export to a real collector.
type sandboxTracing struct {
	forwardTo string
	addr      string // host:port of the receiver, in node 0
	sink      *otlpsink.Sink
	conn      *grpc.ClientConn
	mu        sync.Mutex
	file      *os.File
}

// spansFile is where a sandbox's spans go.
func spansFile(name string) string { return filepath.Join(sandbox.StateDir, name, "spans.jsonl") }

func (t *sandboxTracing) start(ctx context.Context, m *sandbox.Mesh) error {
	n0 := m.Nodes()[0]
	ns, err := netns.Open(n0.NetNSPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	ln, err := netns.Listen(ns, "tcp", fmt.Sprintf("%s:4317", n0.IP))
	if err != nil {
		return fmt.Errorf("OTLP receiver in %s: %w", n0.Name, err)
	}
	t.addr = ln.Addr().String()
	if t.sink, err = otlpsink.Serve(ln, nil); err != nil {
		return err
	}
	if t.file, err = os.OpenFile(spansFile(m.Name()), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644); err != nil {
		return err
	}
	if t.forwardTo != "" {
		if t.conn, err = grpc.NewClient(t.forwardTo, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return fmt.Errorf("--otlp-endpoint %s: %w", t.forwardTo, err)
		}
	}
	t.sink.OnExport(func(req *coltracepb.ExportTraceServiceRequest, spans []otlpsink.Span) {
		t.mu.Lock()
		enc := json.NewEncoder(t.file)
		for _, s := range spans {
			_ = enc.Encode(s)
		}
		t.mu.Unlock()
		if t.conn != nil {
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = coltracepb.NewTraceServiceClient(t.conn).Export(fctx, req)
		}
	})
	return nil
}

func (t *sandboxTracing) args(int) []string {
	return []string{"--tracing-endpoint", t.addr, "--tracing-insecure"}
}

func (t *sandboxTracing) close() {
	if t.sink != nil {
		t.sink.Close()
	}
	if t.conn != nil {
		t.conn.Close()
	}
	t.mu.Lock()
	if t.file != nil {
		t.file.Close()
	}
	t.mu.Unlock()
}

// defaultTraceAttrs are the attributes `sandbox trace` shows by default.
const defaultTraceAttrs = "url.path,http.response.status_code,weft.node,weft.destination.workload,weft.retry.attempt"

func newSandboxTraceCmd() *cobra.Command {
	var name, attrs string
	cmd := &cobra.Command{
		Use:   "trace [TRACE-ID]",
		Short: "Print a trace of a sandbox started with --tracing as a tree (default: the latest trace)",
		Example: `  weftctl sandbox up --name demo --tracing &
  ip netns exec demo-n0-p0 bin/weft-echo get -H 'x-echo-call: http://echo.demo:8080/b' http://echo.demo:8080/a
  weftctl sandbox trace --name demo`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			var keep []string
			if attrs != "all" {
				keep = strings.Split(attrs, ",")
			}
			return printTrace(cmd.OutOrStdout(), spansFile(name), id, keep)
		},
	}
	cmd.Flags().StringVar(&name, "name", "weft", "sandbox name")
	cmd.Flags().StringVar(&attrs, "attrs", defaultTraceAttrs, `span attributes to show, comma-separated, or "all"`)
	return cmd
}

// printTrace prints the trace id (the most recently ended one when id is
// empty) from a spans.jsonl file, with the attributes in keep (nil: all).
func printTrace(w io.Writer, path, id string, keep []string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no spans at %s: was the sandbox started with --tracing?", path)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var spans []otlpsink.Span
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var latest otlpsink.Span
	for sc.Scan() {
		var s otlpsink.Span
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			continue // a line being written
		}
		spans = append(spans, s)
		if s.End.After(latest.End) {
			latest = s
		}
	}
	if id == "" {
		id = latest.TraceID
	}
	tr := otlpsink.Trace(spans, id)
	if keep != nil {
		for i := range tr {
			attrs := map[string]any{}
			for _, k := range keep {
				if v, ok := tr[i].Attrs[k]; ok {
					attrs[k] = v
				}
			}
			tr[i].Attrs = attrs
		}
	}
	if len(tr) == 0 {
		return fmt.Errorf("no spans of trace %q in %s", id, path)
	}
	fmt.Fprintf(w, "trace %s: %d spans\n%s", id, len(tr), otlpsink.Tree(tr))
	return nil
}
