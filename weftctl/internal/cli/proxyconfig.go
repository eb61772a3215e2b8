package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/certs/manager"
)

// workloadInfo is one entry of a node proxy's /workloads.
type workloadInfo struct {
	UID         string    `json:"uid"`
	Namespace   string    `json:"namespace"`
	Name        string    `json:"name"`
	EnrolledAt  time.Time `json:"enrolledAt"`
	Described   bool      `json:"described"`
	Identity    string    `json:"identity"`
	Addresses   []string  `json:"addresses"`
	InboundMode string    `json:"inboundMode"`
	Services    []string  `json:"services"`
	Policies    []string  `json:"authorizationPolicies"`
	Certificate *struct {
		NotAfter time.Time `json:"notAfter"`
		RenewAt  time.Time `json:"renewAt"`
	} `json:"certificate"`
	CertificateError string `json:"certificateError"`
}

// Type URLs of the configuration a node proxy holds.
const (
	typeCluster    = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoints  = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeListener   = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute      = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeService    = "type.googleapis.com/weft.xds.v1.Service"
	typeWorkload   = "type.googleapis.com/weft.xds.v1.Workload"
	typeTrustRoots = "type.googleapis.com/weft.xds.v1.TrustBundle"
)

// proxyConfigSections are the sections of `proxy-config`, in print order.
var proxyConfigSections = []string{"workloads", "services", "routes", "clusters", "endpoints", "certs"}

func newProxyConfigCmd() *cobra.Command {
	var af adminFlags
	var output string
	cmd := &cobra.Command{
		Use:   "proxy-config NODE [workloads|services|routes|clusters|endpoints|certs|all]",
		Short: "Show what one node proxy holds: workloads, services, routes, clusters, endpoints, certificates",
		Long: `Show the configuration a node proxy holds and uses, read from its admin port
(15000, on the node's loopback) through a port-forward to its pod, or inside a
sandbox node with --sandbox:

  workloads  the enrolled pods: identity, addresses, inbound mode, certificate
  services   the Services it knows, with their ports and protocols
  routes     per Service port: matches and where they send (weights, retries, faults)
  clusters   per backend: load balancing, outlier detection, connection limits
  endpoints  per backend: pod addresses, health, node, identity
  certs      the node's and every pod's certificate: expiry, renewal

-o json prints the section as the node proxy reports it (config_dump for
services, routes, clusters and endpoints).`,
		Example: `  weftctl proxy-config worker-1
  weftctl proxy-config worker-1 routes
  weftctl proxy-config worker-1 endpoints -o json
  weftctl proxy-config weft-n0 --sandbox weft`,
		Args: cobra.RangeArgs(1, 2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return append(slices.Clone(proxyConfigSections), "all"), cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			section := "all"
			if len(args) == 2 {
				section = args[1]
			}
			if section != "all" && !slices.Contains(proxyConfigSections, section) {
				return fmt.Errorf("unknown section %q: want one of %s or all", section, strings.Join(proxyConfigSections, ", "))
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: want table or json", output)
			}
			if output == "json" && section == "all" {
				return fmt.Errorf("-o json needs one section: %s", strings.Join(proxyConfigSections, ", "))
			}
			a, _, _, err := af.open()
			if err != nil {
				return err
			}
			defer a.close()
			p, err := findNodeProxy(cmd.Context(), a, args[0])
			if err != nil {
				return err
			}
			return runProxyConfig(cmd.Context(), cmd.OutOrStdout(), p, section, output == "json", time.Now())
		},
	}
	af.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// findNodeProxy is the node proxy running on node.
func findNodeProxy(ctx context.Context, a admins, node string) (*component, error) {
	proxies, err := a.nodeProxies(ctx)
	if err != nil {
		return nil, err
	}
	var nodes []string
	for _, p := range proxies {
		if p.node == node {
			return p, nil
		}
		nodes = append(nodes, p.node)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no node proxy found in %s: is Weft installed there? (weftctl check)", a.where())
	}
	return nil, fmt.Errorf("no node proxy on node %q in %s; node proxies run on: %s", node, a.where(), strings.Join(nodes, ", "))
}

func runProxyConfig(ctx context.Context, out io.Writer, p *component, section string, asJSON bool, now time.Time) error {
	var dump configDump
	needDump := section == "all" || section == "services" || section == "routes" || section == "clusters" || section == "endpoints"
	if needDump {
		if err := p.getJSON(ctx, "/config_dump", &dump); err != nil {
			return fmt.Errorf("node proxy on %s: %w", p.node, err)
		}
	}
	if asJSON {
		var v any
		switch section {
		case "workloads":
			b, err := p.get(ctx, "/workloads")
			if err != nil {
				return err
			}
			v = json.RawMessage(b)
		case "certs":
			b, err := p.get(ctx, "/certs")
			if err != nil {
				return err
			}
			v = json.RawMessage(b)
		default:
			v = dump.Resources[map[string]string{"services": typeService, "routes": typeRoute,
				"clusters": typeCluster, "endpoints": typeEndpoints}[section]]
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	if needDump {
		fmt.Fprintf(out, "Node %s (proxy %s): configuration version %d, control plane %s\n", p.node, p.name, dump.Version,
			map[bool]string{true: "connected", false: "NOT CONNECTED"}[dump.Connected])
	}
	for _, s := range proxyConfigSections {
		if section != "all" && section != s {
			continue
		}
		fmt.Fprintln(out)
		var err error
		switch s {
		case "workloads":
			err = printWorkloads(ctx, out, p, now)
		case "services":
			printServices(out, dump.Resources[typeService])
		case "routes":
			printRoutes(out, dump.Resources[typeRoute])
		case "clusters":
			printClusters(out, dump.Resources[typeCluster])
		case "endpoints":
			printEndpoints(out, dump.Resources[typeEndpoints])
		case "certs":
			err = printCerts(ctx, out, p, now)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func table(out io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(out, 0, 4, 2, ' ', 0) }

func printWorkloads(ctx context.Context, out io.Writer, p *component, now time.Time) error {
	var wls []workloadInfo
	if err := p.getJSON(ctx, "/workloads", &wls); err != nil {
		return err
	}
	fmt.Fprintf(out, "WORKLOADS (%d enrolled pods)\n", len(wls))
	tw := table(out)
	fmt.Fprintln(tw, "POD\tIDENTITY\tADDRESSES\tINBOUND\tSERVICES\tCERTIFICATE")
	for _, w := range wls {
		id, mode := w.Identity, w.InboundMode
		if !w.Described {
			id, mode = "(not in the configuration yet)", "-"
		}
		cert := "-"
		switch {
		case w.CertificateError != "":
			cert = "ERROR: " + w.CertificateError
		case w.Certificate != nil:
			cert = "expires in " + roundDuration(w.Certificate.NotAfter.Sub(now))
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\n", w.Namespace, w.Name, id, orDash(strings.Join(w.Addresses, ",")),
			strings.TrimPrefix(mode, "INBOUND_MODE_"), orDash(strings.Join(w.Services, ",")), cert)
	}
	return tw.Flush()
}

func printServices(out io.Writer, res map[string]json.RawMessage) {
	fmt.Fprintf(out, "SERVICES (%d)\n", len(res))
	tw := table(out)
	fmt.Fprintln(tw, "SERVICE\tADDRESSES\tPORTS")
	for _, name := range slices.Sorted(maps.Keys(res)) {
		var s struct {
			Addresses []string `json:"addresses"`
			Ports     []struct {
				Name     string `json:"name"`
				Port     int    `json:"port"`
				Protocol string `json:"protocol"`
			} `json:"ports"`
		}
		_ = json.Unmarshal(res[name], &s)
		var ports []string
		for _, p := range s.Ports {
			proto := strings.TrimPrefix(p.Protocol, "PROTOCOL_")
			if proto == "" {
				proto = "sniffed" // PROTOCOL_UNSPECIFIED, omitted as the zero value
			}
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, proto))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, orDash(strings.Join(s.Addresses, ",")), strings.Join(ports, " "))
	}
	_ = tw.Flush()
}

// routeJSON is the part of an Envoy RouteConfiguration the routes table shows.
type routeJSON struct {
	VirtualHosts []struct {
		Routes []struct {
			Name  string `json:"name"`
			Match struct {
				Prefix              string `json:"prefix"`
				Path                string `json:"path"`
				PathSeparatedPrefix string `json:"pathSeparatedPrefix"`
				SafeRegex           *struct {
					Regex string `json:"regex"`
				} `json:"safeRegex"`
				Headers []struct {
					Name string `json:"name"`
				} `json:"headers"`
				QueryParameters []struct {
					Name string `json:"name"`
				} `json:"queryParameters"`
			} `json:"match"`
			Route *struct {
				Cluster          string `json:"cluster"`
				Timeout          string `json:"timeout"`
				WeightedClusters *struct {
					Clusters []struct {
						Name   string `json:"name"`
						Weight int    `json:"weight"`
					} `json:"clusters"`
				} `json:"weightedClusters"`
				RetryPolicy *struct {
					NumRetries int    `json:"numRetries"`
					RetryOn    string `json:"retryOn"`
				} `json:"retryPolicy"`
			} `json:"route"`
			DirectResponse *struct {
				Status int `json:"status"`
			} `json:"directResponse"`
			TypedPerFilterConfig map[string]json.RawMessage `json:"typedPerFilterConfig"`
		} `json:"routes"`
	} `json:"virtualHosts"`
}

func printRoutes(out io.Writer, res map[string]json.RawMessage) {
	fmt.Fprintf(out, "ROUTES (%d route tables)\n", len(res))
	tw := table(out)
	fmt.Fprintln(tw, "ROUTE TABLE\tNAME\tMATCH\tTO\tPOLICY")
	for _, name := range slices.Sorted(maps.Keys(res)) {
		var rc routeJSON
		_ = json.Unmarshal(res[name], &rc)
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				m := r.Match
				var match []string
				switch {
				case m.Path != "":
					match = append(match, "path="+m.Path)
				case m.PathSeparatedPrefix != "":
					match = append(match, "prefix="+m.PathSeparatedPrefix)
				case m.SafeRegex != nil:
					match = append(match, "regex="+m.SafeRegex.Regex)
				default:
					match = append(match, "prefix="+m.Prefix)
				}
				for _, h := range m.Headers {
					match = append(match, "header:"+h.Name)
				}
				for _, q := range m.QueryParameters {
					match = append(match, "query:"+q.Name)
				}
				to, policy := "-", []string{}
				switch {
				case r.Route != nil && r.Route.WeightedClusters != nil:
					var parts []string
					for _, c := range r.Route.WeightedClusters.Clusters {
						parts = append(parts, fmt.Sprintf("%s=%d", c.Name, c.Weight))
					}
					to = strings.Join(parts, " ")
				case r.Route != nil:
					to = r.Route.Cluster
				case r.DirectResponse != nil:
					to = fmt.Sprintf("local reply %d", r.DirectResponse.Status)
				}
				if r.Route != nil {
					if r.Route.Timeout != "" && r.Route.Timeout != "0s" {
						policy = append(policy, "timeout "+r.Route.Timeout)
					}
					if rp := r.Route.RetryPolicy; rp != nil {
						policy = append(policy, fmt.Sprintf("retries %d on %s", rp.NumRetries, rp.RetryOn))
					}
				}
				if _, ok := r.TypedPerFilterConfig["envoy.filters.http.fault"]; ok {
					policy = append(policy, "fault")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, orDash(r.Name), strings.Join(match, " "), to, orDash(strings.Join(policy, ", ")))
			}
		}
	}
	_ = tw.Flush()
}

func printClusters(out io.Writer, res map[string]json.RawMessage) {
	fmt.Fprintf(out, "CLUSTERS (%d)\n", len(res))
	tw := table(out)
	fmt.Fprintln(tw, "CLUSTER\tSERVICE\tBALANCING\tOUTLIER DETECTION\tLIMITS")
	for _, name := range slices.Sorted(maps.Keys(res)) {
		var c struct {
			LbPolicy            string `json:"lbPolicy"`
			LoadBalancingPolicy *struct {
				Policies []struct {
					TypedExtensionConfig struct {
						Name string `json:"name"`
					} `json:"typedExtensionConfig"`
				} `json:"policies"`
			} `json:"loadBalancingPolicy"`
			OutlierDetection *struct {
				Consecutive5xx   *int   `json:"consecutive5xx"`
				BaseEjectionTime string `json:"baseEjectionTime"`
			} `json:"outlierDetection"`
			CircuitBreakers *struct {
				Thresholds []struct {
					MaxConnections int64 `json:"maxConnections"`
					MaxRequests    int64 `json:"maxRequests"`
				} `json:"thresholds"`
			} `json:"circuitBreakers"`
			Metadata struct {
				TypedFilterMetadata map[string]struct {
					Service string `json:"service"`
					Port    int    `json:"port"`
				} `json:"typedFilterMetadata"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(res[name], &c)
		lb := c.LbPolicy
		if c.LoadBalancingPolicy != nil && len(c.LoadBalancingPolicy.Policies) > 0 {
			lb = c.LoadBalancingPolicy.Policies[0].TypedExtensionConfig.Name
			lb = lb[strings.LastIndexAny(lb, "/.")+1:]
		}
		if lb == "" {
			lb = "ROUND_ROBIN"
		}
		od := "-"
		if o := c.OutlierDetection; o != nil {
			n := 5
			if o.Consecutive5xx != nil {
				n = *o.Consecutive5xx
			}
			od = fmt.Sprintf("%d consecutive 5xx", n)
			if o.BaseEjectionTime != "" {
				od += ", eject " + o.BaseEjectionTime
			}
		}
		limits := "-"
		if cb := c.CircuitBreakers; cb != nil && len(cb.Thresholds) > 0 {
			t := cb.Thresholds[0]
			limits = fmt.Sprintf("conns %s, requests %s", limit(t.MaxConnections), limit(t.MaxRequests))
		}
		svc := "-"
		if m, ok := c.Metadata.TypedFilterMetadata["weftmesh.io"]; ok && m.Service != "" {
			svc = fmt.Sprintf("%s:%d", m.Service, m.Port)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, svc, lb, od, limits)
	}
	_ = tw.Flush()
}

func limit(n int64) string {
	if n == 0 || n >= 1<<32-1 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

func printEndpoints(out io.Writer, res map[string]json.RawMessage) {
	fmt.Fprintf(out, "ENDPOINTS (%d clusters)\n", len(res))
	tw := table(out)
	fmt.Fprintln(tw, "CLUSTER\tADDRESS\tHEALTH\tPOD\tNODE\tIDENTITY")
	for _, name := range slices.Sorted(maps.Keys(res)) {
		var cla struct {
			Endpoints []struct {
				LbEndpoints []struct {
					Endpoint struct {
						Address struct {
							SocketAddress struct {
								Address   string `json:"address"`
								PortValue int    `json:"portValue"`
							} `json:"socketAddress"`
						} `json:"address"`
					} `json:"endpoint"`
					HealthStatus string `json:"healthStatus"`
					Metadata     struct {
						TypedFilterMetadata map[string]struct {
							Pod      string `json:"pod"`
							Node     string `json:"node"`
							Identity string `json:"identity"`
						} `json:"typedFilterMetadata"`
					} `json:"metadata"`
				} `json:"lbEndpoints"`
			} `json:"endpoints"`
		}
		_ = json.Unmarshal(res[name], &cla)
		n := 0
		for _, l := range cla.Endpoints {
			for _, e := range l.LbEndpoints {
				n++
				sa := e.Endpoint.Address.SocketAddress
				m := e.Metadata.TypedFilterMetadata["weftmesh.io"]
				health := e.HealthStatus
				if health == "" {
					health = "UNKNOWN"
				}
				fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\t%s\t%s\n", name, sa.Address, sa.PortValue, health, orDash(m.Pod), orDash(m.Node), orDash(m.Identity))
			}
		}
		if n == 0 {
			fmt.Fprintf(tw, "%s\t(none)\t\t\t\t\n", name)
		}
	}
	_ = tw.Flush()
}

func printCerts(ctx context.Context, out io.Writer, p *component, now time.Time) error {
	var certs []manager.Status
	if err := p.getJSON(ctx, "/certs", &certs); err != nil {
		return err
	}
	fmt.Fprintf(out, "CERTIFICATES (%d)\n", len(certs))
	tw := table(out)
	fmt.Fprintln(tw, "SPIFFE ID\tPOD\tNOT AFTER\tEXPIRES IN\tRENEWS IN\tRENEWAL")
	for _, c := range certs {
		renewal := "ok"
		if c.Failures > 0 {
			renewal = fmt.Sprintf("%d failure(s): %s", c.Failures, c.LastError)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, orDash(c.Pod), c.NotAfter.UTC().Format(time.RFC3339),
			roundDuration(c.NotAfter.Sub(now)), roundDuration(c.RenewAt.Sub(now)), renewal)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
