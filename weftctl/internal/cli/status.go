package cli

import (
	"context"
	"crypto/x509"
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

// cpDebug is the control plane's /debug/config without a node.
type cpDebug struct {
	Connected []string `json:"connected"`
	Nodes     map[string]struct {
		Status   string `json:"status"`
		Snapshot string `json:"snapshot"`
		Streams  []struct {
			Protocol string `json:"protocol"`
			Types    map[string]struct {
				Sent    string `json:"sent"`
				Acked   string `json:"acked"`
				Nacked  string `json:"nacked"`
				NackErr string `json:"nackErr"`
			} `json:"types"`
		} `json:"streams"`
	} `json:"nodes"`
}

// configDump is a node proxy's /config_dump.
type configDump struct {
	Version   uint64                                `json:"version"`
	Connected bool                                  `json:"connected"`
	Resources map[string]map[string]json.RawMessage `json:"resources"`
}

func newStatusCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the control plane, the connected node proxies, their configuration sync and certificate expiry",
		Long: `Show the state of the mesh: each control plane replica (ready, how many node
proxies it serves), and each node proxy: ready, whether the configuration the
control plane last sent it is acknowledged (SYNCED), still in flight (STALE) or
rejected (NACKED, with the reason), its configuration version, enrolled pods,
and its certificates' expiry.

On Kubernetes it reads the pods' admin ports through port-forwards (like kubectl
port-forward: you need pods/portforward in Weft's namespace); with --sandbox it
reads a running sandbox. Exits 1 when something needs attention.`,
		Example: `  weftctl status
  weftctl status --context prod --weft-namespace weft-system
  weftctl status --sandbox weft`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, _, _, err := af.open()
			if err != nil {
				return err
			}
			defer a.close()
			problems, err := runStatus(cmd.Context(), cmd.OutOrStdout(), a, time.Now())
			if err != nil {
				return err
			}
			if problems > 0 {
				return fmt.Errorf("%d problem(s): see above", problems)
			}
			return nil
		},
	}
	af.register(cmd)
	return cmd
}

// runStatus prints the status table and returns how many problems it saw.
func runStatus(ctx context.Context, out io.Writer, a admins, now time.Time) (int, error) {
	cps, err := a.controlPlanes(ctx)
	if err != nil {
		return 0, err
	}
	proxies, err := a.nodeProxies(ctx)
	if err != nil {
		return 0, err
	}
	problems := 0
	if len(cps) == 0 {
		return 0, fmt.Errorf("no control plane found in %s: is Weft installed there? (weftctl check)", a.where())
	}

	// Control plane replicas, and the union of their views of the nodes.
	views := map[string]string{} // node -> sync status, from the replica it is connected to
	errs := map[string]string{}  // node -> the NACK reason
	fmt.Fprintf(out, "Control plane: %s\n", a.where())
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  REPLICA\tREADY\tNODE PROXIES CONNECTED")
	readyReplicas := 0
	for _, cp := range cps {
		ready := "yes"
		if _, err := cp.get(ctx, "/readyz"); err != nil {
			ready = "no: " + firstLine(err.Error())
		} else {
			readyReplicas++
		}
		var d cpDebug
		connected := "?"
		if err := cp.getJSON(ctx, "/debug/config", &d); err == nil {
			connected = fmt.Sprint(len(d.Connected))
			for node, n := range d.Nodes {
				views[node] = n.Status
				for _, st := range n.Streams {
					for url, t := range st.Types {
						if t.NackErr != "" {
							errs[node] = shortType(url) + ": " + t.NackErr
						}
					}
				}
			}
		} else if ready == "yes" {
			connected = "? (" + firstLine(err.Error()) + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", cp.name, ready, connected)
	}
	_ = tw.Flush()
	if readyReplicas == 0 {
		problems++
		fmt.Fprintln(out, "  ✗ no control plane replica is ready: node proxies cannot get certificates or configuration")
	}

	fmt.Fprintln(out)
	fmt.Fprintln(out, "Node proxies")
	if len(proxies) == 0 {
		fmt.Fprintln(out, "  none found")
		return problems + 1, nil
	}
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tPROXY\tREADY\tCONFIG\tVERSION\tPODS\tCERTIFICATES")
	var notes []string
	bundle := ""
	for _, p := range proxies {
		ready := "yes"
		if _, err := p.get(ctx, "/healthz/ready"); err != nil {
			ready = "no"
			problems++
			notes = append(notes, fmt.Sprintf("%s: not ready: %s", p.node, firstLine(err.Error())))
		}
		sync := views[p.node]
		if sync == "" {
			sync = "DISCONNECTED"
		}
		var dump configDump
		version := "?"
		if err := p.getJSON(ctx, "/config_dump", &dump); err == nil {
			version = fmt.Sprint(dump.Version)
			if !dump.Connected && sync != "DISCONNECTED" {
				sync += " (proxy: reconnecting)"
			}
			if bundle == "" {
				bundle = trustBundleSummary(dump.Resources[typeTrustRoots], now)
			}
		}
		switch {
		case strings.HasPrefix(sync, "NACKED"):
			problems++
			notes = append(notes, fmt.Sprintf("%s: rejected its configuration: %s", p.node, errs[p.node]))
		case sync == "DISCONNECTED":
			problems++
			notes = append(notes, fmt.Sprintf("%s: not connected to any control plane replica", p.node))
		}
		var wls []workloadInfo
		pods := "?"
		if err := p.getJSON(ctx, "/workloads", &wls); err == nil {
			pods = fmt.Sprint(len(wls))
		}
		var certs []manager.Status
		certCol := "?"
		if err := p.getJSON(ctx, "/certs", &certs); err == nil {
			var col string
			var bad int
			col, bad = certSummary(certs, now)
			certCol = col
			if bad > 0 {
				problems++
				notes = append(notes, fmt.Sprintf("%s: %d certificate(s) failing to renew or expired: weftctl proxy-config %s certs", p.node, bad, p.node))
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.node, p.name, ready, sync, version, pods, certCol)
	}
	_ = tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(out, "  ✗", n)
	}
	if bundle != "" {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "Trust bundle (as the node proxies hold it)")
		fmt.Fprint(out, bundle)
	}
	return problems, nil
}

// trustBundleSummary lists the roots of the TrustBundle resources: trust
// domain, subject and expiry.
func trustBundleSummary(res map[string]json.RawMessage, now time.Time) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(res)) {
		var tb struct {
			TrustDomain string   `json:"trustDomain"`
			Roots       [][]byte `json:"roots"` // protojson bytes: base64 DER
		}
		if json.Unmarshal(res[name], &tb) != nil {
			continue
		}
		for _, der := range tb.Roots {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				fmt.Fprintf(&b, "  %s: a root that does not parse: %v\n", tb.TrustDomain, err)
				continue
			}
			fmt.Fprintf(&b, "  %s: root %q, expires %s (in %d days)\n", tb.TrustDomain, c.Subject.CommonName,
				c.NotAfter.UTC().Format("2006-01-02"), int(c.NotAfter.Sub(now).Hours()/24))
		}
	}
	return b.String()
}

// certSummary is "N valid, next expiry in D" and how many are expired or
// failing to renew.
func certSummary(certs []manager.Status, now time.Time) (string, int) {
	if len(certs) == 0 {
		return "none", 0
	}
	bad := 0
	next := certs[0].NotAfter
	for _, c := range certs {
		if c.NotAfter.Before(now) || c.Failures > 0 {
			bad++
		}
		if c.NotAfter.Before(next) {
			next = c.NotAfter
		}
	}
	s := fmt.Sprintf("%d, first expiry in %s", len(certs), roundDuration(next.Sub(now)))
	if bad > 0 {
		s += fmt.Sprintf(", %d failing", bad)
	}
	return s, bad
}

// roundDuration prints d to the minute (to the second below a minute).
func roundDuration(d time.Duration) string {
	if d < 0 {
		return "-" + roundDuration(-d) + " (expired)"
	}
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// shortType is a type URL without its prefix: "envoy.config.cluster.v3.Cluster".
func shortType(url string) string {
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		return url[i+1:]
	}
	return url
}
