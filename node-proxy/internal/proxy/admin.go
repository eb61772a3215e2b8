package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/certs/manager"
)

// httpServer is one of the proxy's HTTP ports.
type httpServer struct {
	ln  net.Listener
	srv *http.Server
}

func (s *httpServer) serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	_ = s.srv.Serve(s.ln)
}

// listenHTTP opens the admin, metrics and readiness ports.
func (p *Proxy) listenHTTP() ([]*httpServer, error) {
	var out []*httpServer
	add := func(addr string, h http.Handler) error {
		if addr == "" {
			return nil
		}
		ln, err := listen(addr)
		if err != nil {
			return err
		}
		out = append(out, &httpServer{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}})
		return nil
	}
	if err := add(p.cfg.AdminListen, p.adminHandler()); err != nil {
		closeAll(out)
		return nil, err
	}
	metrics := http.NewServeMux()
	metrics.Handle("GET /metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{}))
	if err := add(p.cfg.MetricsListen, metrics); err != nil {
		closeAll(out)
		return nil, err
	}
	ready := http.NewServeMux()
	ready.HandleFunc("GET /healthz/ready", p.serveReady)
	if err := add(p.cfg.ReadinessListen, ready); err != nil {
		closeAll(out)
		return nil, err
	}
	return out, nil
}

func (p *Proxy) serveReady(w http.ResponseWriter, _ *http.Request) {
	if err := p.Ready(); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (p *Proxy) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "weft node proxy admin: /workloads /certs /config_dump /healthz/ready /metrics /debug/pprof/")
	})
	mux.HandleFunc("GET /workloads", p.serveWorkloads)
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, _ *http.Request) {
		st := p.mgr.Statuses()
		if st == nil {
			st = []manager.Status{}
		}
		writeJSON(w, st)
	})
	mux.HandleFunc("GET /config_dump", p.serveConfigDump)
	mux.HandleFunc("GET /healthz/ready", p.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// workloadView is one enrolled pod on /workloads.
type workloadView struct {
	UID              string    `json:"uid"`
	Namespace        string    `json:"namespace"`
	Name             string    `json:"name"`
	NetNS            string    `json:"netns,omitempty"`
	EnrolledAt       time.Time `json:"enrolledAt"`
	Described        bool      `json:"described"` // the configuration has its Workload
	Identity         string    `json:"identity,omitempty"`
	Addresses        []string  `json:"addresses,omitempty"`
	InboundMode      string    `json:"inboundMode,omitempty"`
	Services         []string  `json:"services,omitempty"`
	Policies         []string  `json:"authorizationPolicies,omitempty"`
	Certificate      *certView `json:"certificate,omitempty"`
	CertificateError string    `json:"certificateError,omitempty"`
}

// certView is a pod certificate's lifetime on /workloads.
type certView struct {
	NotAfter time.Time `json:"notAfter"`
	RenewAt  time.Time `json:"renewAt"`
}

func (p *Proxy) serveWorkloads(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	pods := p.podList()
	p.mu.Unlock()
	statuses := map[string]manager.Status{}
	for _, s := range p.mgr.Statuses() {
		if s.Pod != "" {
			statuses[s.Pod] = s
		}
	}
	out := []workloadView{}
	for _, pd := range pods {
		v := workloadView{UID: pd.ref.UID, Namespace: pd.ref.Namespace, Name: pd.ref.Name, NetNS: pd.netnsPath, EnrolledAt: pd.enrolled}
		if _, wl, ok := pd.workload(); ok {
			v.Described = true
			v.Identity = wl.GetIdentity()
			v.Addresses = wl.GetAddresses()
			v.InboundMode = wl.GetInboundMode().String()
			v.Services = wl.GetServices()
			for _, az := range wl.GetAuthorization() {
				v.Policies = append(v.Policies, az.GetPolicy()+" "+az.GetAction().String())
			}
		}
		if s, ok := statuses[pd.key]; ok {
			v.Certificate = &certView{NotAfter: s.NotAfter, RenewAt: s.RenewAt}
		}
		pd.mu.Lock()
		if pd.certErr != nil {
			v.CertificateError = pd.certErr.Error()
		}
		pd.mu.Unlock()
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	writeJSON(w, out)
}

// serveConfigDump writes the xDS resources held, by type URL and name, as
// protobuf JSON.
func (p *Proxy) serveConfigDump(w http.ResponseWriter, _ *http.Request) {
	mc, _ := p.config()
	dump := struct {
		Version   uint64                                `json:"version"`
		Connected bool                                  `json:"connected"`
		Resources map[string]map[string]json.RawMessage `json:"resources"`
	}{Connected: p.xds.Connected(), Resources: map[string]map[string]json.RawMessage{}}
	if mc != nil {
		dump.Version = mc.Version
		for t, byName := range mc.Resources() {
			m := map[string]json.RawMessage{}
			for name, a := range byName {
				msg, err := a.UnmarshalNew()
				if err != nil {
					m[name] = json.RawMessage(fmt.Sprintf("%q", err.Error()))
					continue
				}
				b, err := protojson.Marshal(msg)
				if err != nil {
					b = []byte(fmt.Sprintf("%q", err.Error()))
				}
				m[name] = b
			}
			dump.Resources[t] = m
		}
	}
	writeJSON(w, dump)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
