package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	sotwv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Builder computes the resources one node proxy receives, keyed by type
// URL (Envoy's and Weft's). It must be safe for concurrent use: several
// nodes are built at once. It reads the model as it is when called; a
// model change during a rebuild is followed by a Notify and another one.
type Builder func(node string) (map[string][]types.Resource, error)

// ErrNotReady, returned (or wrapped) by a Builder, means there is no
// configuration to serve yet (the source has not synced): the node is
// built again at the next Notify, and nothing is logged as an error.
var ErrNotReady = errors.New("xDS configuration not ready")

// Default debounce timings.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultMaxDelay = time.Second
)

// DefaultSendBudget is the default Config.SendBudget. A node's whole
// configuration is a few megabytes with 500 Services: a few dozen nodes
// can be sent theirs at once.
const DefaultSendBudget = 64 << 20

// sendBudgetHold is how long an unanswered response counts against the
// send budget at most.
const sendBudgetHold = 30 * time.Second

// Config wires a Server.
type Config struct {
	// Builder computes a node's resources. Required.
	Builder Builder
	// Authenticate names the node proxy behind a stream, or refuses it.
	// Required; on port 15012 it is NodeFromPeer(authority).
	Authenticate Authenticator
	// Debounce is how long the model must stay unchanged after a Notify
	// before the connected nodes are rebuilt. Zero means DefaultDebounce.
	Debounce time.Duration
	// MaxDelay bounds how long a stream of Notify calls can postpone a
	// rebuild, counted from the first one. Zero means DefaultMaxDelay; it
	// must not be shorter than Debounce.
	MaxDelay time.Duration
	// Parallelism is how many nodes are built at once. Zero means
	// GOMAXPROCS.
	Parallelism int
	// SendBudget bounds the bytes of delta responses sent to clients that
	// have not answered them yet (see sendBudget); a stream waits for room
	// before sending. A response larger than the whole budget waits until
	// it has it all. Zero means DefaultSendBudget.
	SendBudget int64
	// Registerer receives the metrics; nil means they are not exported.
	Registerer prometheus.Registerer
	// Log receives refusals, build failures and (at debug level) every
	// snapshot set; nil means slog.Default().
	Log *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.Builder == nil {
		errs = append(errs, errors.New("Builder is required"))
	}
	if c.Authenticate == nil {
		errs = append(errs, errors.New("Authenticate is required"))
	}
	if c.Debounce < 0 || c.MaxDelay < 0 || c.Parallelism < 0 || c.SendBudget < 0 {
		errs = append(errs, errors.New("Debounce, MaxDelay, Parallelism and SendBudget must not be negative"))
	}
	if c.SendBudget == 0 {
		c.SendBudget = DefaultSendBudget
	}
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = max(DefaultMaxDelay, c.Debounce)
	}
	if c.MaxDelay < c.Debounce {
		errs = append(errs, fmt.Errorf("MaxDelay %s is shorter than Debounce %s", c.MaxDelay, c.Debounce))
	}
	if c.Parallelism == 0 {
		c.Parallelism = runtime.GOMAXPROCS(0)
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if len(errs) > 0 {
		return fmt.Errorf("xds: %w", errors.Join(errs...))
	}
	return nil
}

// Server is the xDS server: ADS state of the world (go-control-plane's, over
// its snapshot cache) and delta (delta.go), both serving one Snapshot per
// connected node.
type Server struct {
	cfg      Config
	log      *slog.Logger
	cache    cachev3.SnapshotCache // for state-of-the-world streams
	sets     *setCache             // resource sets shared between nodes' snapshots
	xds      serverv3.Server       // go-control-plane's; serves state-of-the-world streams
	metrics  *metrics
	budget   *sendBudget
	deltaIDs atomic.Int64       // numbers delta streams
	life     context.Context    // the server's lifetime: ends when Run returns
	stop     context.CancelFunc // ends life, and so every stream

	changed chan struct{} // Notify; capacity 1, coalesces
	synced  chan struct{} // a node connected or went away; capacity 1, coalesces

	mu        sync.Mutex                               // guards the fields below
	streams   map[streamKey]*stream                    // open streams that passed authentication
	nodes     map[string]int                           // connected nodes: accepted streams per node
	pending   map[string]time.Time                     // nodes connected or gone since the last sync, and when
	published map[string]*Snapshot                     // snapshot set, by node
	wakes     map[string]map[streamKey]chan<- struct{} // accepted delta streams by node: told of a new snapshot
}

// New checks cfg and returns a Server. Register it on a gRPC server and
// call Run.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		log:       cfg.Log,
		metrics:   newMetrics(cfg.Registerer),
		budget:    newSendBudget(cfg.SendBudget, sendBudgetHold),
		life:      ctx,
		stop:      stop,
		changed:   make(chan struct{}, 1),
		synced:    make(chan struct{}, 1),
		streams:   make(map[streamKey]*stream),
		nodes:     make(map[string]int),
		pending:   make(map[string]time.Time),
		published: make(map[string]*Snapshot),
		wakes:     make(map[string]map[streamKey]chan<- struct{}),
	}
	logger := gcpLogger{log: cfg.Log}
	// ads=false: a client may ask for a subset of a type by name (a
	// proxyless gRPC client asks for one listener) and is answered with
	// those; in ADS mode the cache would wait until every resource of the
	// snapshot was asked for. See the package doc.
	s.cache = cachev3.NewSnapshotCache(false, cachev3.IDHash{}, logger)
	s.sets = newSetCache()
	s.xds = serverv3.NewServer(ctx, s.cache, callbacks{s}, sotwv3.WithLogger(logger))
	return s, nil
}

// Register adds the Aggregated Discovery Service (both protocols) to g.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, ads{s})
}

// ads is the Aggregated Discovery Service: state of the world by
// go-control-plane, delta by serveDelta.
type ads struct{ s *Server }

func (a ads) StreamAggregatedResources(str discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return a.s.xds.StreamAggregatedResources(str)
}

func (a ads) DeltaAggregatedResources(str discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return a.s.serveDelta(str)
}

// Notify tells the server the model changed. It never blocks; bursts are
// debounced by Run.
func (s *Server) Notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Connected lists the nodes with at least one accepted stream, sorted.
func (s *Server) Connected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.nodes))
}

// Run builds and publishes snapshots until ctx ends, then ends every open
// stream. Call it once. It returns nil when ctx ends.
func (s *Server) Run(ctx context.Context) error {
	defer s.stop()
	d := debouncer{quiet: s.cfg.Debounce, max: s.cfg.MaxDelay}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	s.syncNodes(ctx) // nodes that connected before Run
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
			now := time.Now()
			timer.Reset(d.change(now).Sub(now))
		case <-timer.C:
			first, ok := d.fire(time.Now())
			if !ok { // not due yet; cannot happen with Go 1.23+ timers, but cheap to handle
				if due := d.due(); !due.IsZero() {
					timer.Reset(time.Until(due))
				}
				continue
			}
			s.publishAll(ctx, s.Connected(), triggerChange, func(string) time.Time { return first })
		case <-s.synced:
			s.syncNodes(ctx)
		}
	}
}

// syncNodes builds the nodes that connected and forgets those that went
// away since the last call.
func (s *Server) syncNodes(ctx context.Context) {
	s.mu.Lock()
	pending := s.pending
	s.pending = make(map[string]time.Time)
	var build []string
	for node := range pending {
		if s.nodes[node] > 0 {
			build = append(build, node)
			continue
		}
		// Under mu, so no stream of this node can be accepted (and open a
		// watch in the cache) between the check above and the clear.
		s.cache.ClearSnapshot(node)
		delete(s.published, node)
		s.log.Debug("xDS node gone; snapshot cleared", logKeyNode, node)
	}
	s.mu.Unlock()
	slices.Sort(build)
	s.publishAll(ctx, build, triggerConnect, func(node string) time.Time { return pending[node] })
}

// publishAll publishes nodes, Parallelism at a time, and returns when all
// are done. Only Run's goroutine calls it, so a node is never set and
// cleared at the same time.
func (s *Server) publishAll(ctx context.Context, nodes []string, trigger string, since func(string) time.Time) {
	if trigger != triggerConnect {
		s.sets.rotate() // a model change: the previous generation's sets are now old
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(s.cfg.Parallelism, len(nodes)) {
		wg.Go(func() {
			for node := range work {
				s.publish(ctx, node, trigger, since(node))
			}
		})
	}
	for _, node := range nodes {
		work <- node
	}
	close(work)
	wg.Wait()
}

// publish builds one node's snapshot and sets it if it is consistent and
// differs from the one the node has. Otherwise the previous one stays.
func (s *Server) publish(ctx context.Context, node, trigger string, since time.Time) {
	res, err := s.cfg.Builder(node)
	if errors.Is(err, ErrNotReady) {
		s.log.Debug("no xDS snapshot yet", logKeyNode, node, logKeyErr, err)
		return
	}
	if err != nil {
		s.metrics.buildErrors.Inc()
		s.log.Error("building xDS snapshot failed; keeping the previous one", logKeyNode, node, logKeyErr, err)
		return
	}
	snap, err := newSnapshot(res, s.sets)
	if err == nil {
		err = s.sets.consistent(snap)
	}
	if err != nil {
		s.metrics.inconsistent.Inc()
		s.log.Error("refusing xDS snapshot; keeping the previous one", logKeyNode, node, logKeyErr, err)
		return
	}
	s.mu.Lock()
	same := s.published[node] != nil && s.published[node].Version() == snap.Version()
	s.mu.Unlock()
	if same {
		return
	}
	if err := s.cache.SetSnapshot(ctx, node, snap); err != nil {
		s.log.Error("setting xDS snapshot failed", logKeyNode, node, logKeyErr, err)
		return
	}
	s.mu.Lock()
	s.published[node] = snap
	for _, wake := range s.wakes[node] {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	s.metrics.latency.WithLabelValues(trigger).Observe(time.Since(since).Seconds())
	s.log.Debug("xDS snapshot set", logKeyNode, node, logKeyVersion, snap.Version(), logKeyTrigger, trigger)
}

// current is the snapshot set for node, nil if none.
func (s *Server) current(node string) *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.published[node]
}

// signalSync wakes Run to sync nodes. Callers hold mu and have updated
// pending.
func (s *Server) signalSync() {
	select {
	case s.synced <- struct{}{}:
	default:
	}
}
