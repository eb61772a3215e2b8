package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/manager"
)

func newCertsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "certs",
		Short: "Create and inspect mesh CA material (offline root, intermediate, bundles)",
		Long: `Create and inspect Weft CA material. Files use the cert-manager Secret layout:
tls.crt (issuing certificate and chain), tls.key (its key), ca.crt (trusted roots).
See certs/README.md for bringing your own CA and for root rotation.`,
	}
	c.AddCommand(newCertsRootCmd(), newCertsIntermediateCmd(), newCertsInspectCmd(), newCertsBundleCmd(), newCertsRequestCmd())
	return c
}

func trustDomainFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "trust-domain", certs.DefaultTrustDomain, "SPIFFE trust domain")
}

func newCertsRootCmd() *cobra.Command {
	var out, tdName string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "root --out DIR",
		Short: "Create a self-signed root CA (keep it offline; sign intermediates with it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			td, err := spiffeid.TrustDomainFromString(tdName)
			if err != nil {
				return fmt.Errorf("--trust-domain: %w", err)
			}
			m, err := certs.NewRoot(td, ttl, nil)
			if err != nil {
				return err
			}
			if err := writeMaterial(out, m); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote root CA to %s (tls.crt, tls.key, ca.crt)\n", out)
			return describeFile(cmd.OutOrStdout(), filepath.Join(out, certs.KeyTLSCrt))
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write tls.crt, tls.key and ca.crt to (must not hold a CA already)")
	cmd.Flags().DurationVar(&ttl, "ttl", certs.DefaultRootTTL, "lifetime of the root")
	trustDomainFlag(cmd, &tdName)
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func newCertsIntermediateCmd() *cobra.Command {
	var rootDir, out, tdName string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "intermediate --root DIR --out DIR",
		Short: "Create an intermediate CA signed by a root, for the control plane to sign with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			td, err := spiffeid.TrustDomainFromString(tdName)
			if err != nil {
				return fmt.Errorf("--trust-domain: %w", err)
			}
			parent, err := (certs.DirStore{Dir: rootDir}).Load(cmd.Context())
			if err != nil {
				return fmt.Errorf("--root %s: %w", rootDir, err)
			}
			m, err := certs.NewIntermediate(td, parent, ttl, nil)
			if err != nil {
				return err
			}
			if err := writeMaterial(out, m); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote intermediate CA to %s; load it as a Secret:\n"+
				"  kubectl -n weft-system create secret generic weft-ca --from-file=%s --from-file=%s --from-file=%s\n",
				out, filepath.Join(out, certs.KeyTLSCrt), filepath.Join(out, certs.KeyTLSKey), filepath.Join(out, certs.KeyCACrt))
			return describeFile(cmd.OutOrStdout(), filepath.Join(out, certs.KeyTLSCrt))
		},
	}
	cmd.Flags().StringVar(&rootDir, "root", "", "directory with the parent CA (tls.crt, tls.key, ca.crt)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the intermediate to")
	cmd.Flags().DurationVar(&ttl, "ttl", certs.DefaultIntermediateTTL, "lifetime of the intermediate (capped at the root's)")
	trustDomainFlag(cmd, &tdName)
	_ = cmd.MarkFlagRequired("root")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func newCertsInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE...",
		Short: "Describe the certificates in PEM files",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range args {
				if err := describeFile(cmd.OutOrStdout(), f); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func newCertsBundleCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "bundle --out FILE ROOTS.pem...",
		Short: "Merge root certificates into one ca.crt (each root once), e.g. to add a new root before rotating",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var roots []*x509.Certificate
			for _, f := range args {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				cs, err := certs.ParseCertificatesPEM(b)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				for _, c := range cs {
					if !c.IsCA {
						return fmt.Errorf("%s: %q is not a CA certificate", f, c.Subject)
					}
					dup := false
					for _, r := range roots {
						dup = dup || r.Equal(c)
					}
					if !dup {
						roots = append(roots, c)
					}
				}
			}
			if err := os.WriteFile(out, certs.EncodeCertificatesPEM(roots), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d root(s) to %s\n", len(roots), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func writeMaterial(dir string, m *certs.Material) error {
	err := (certs.DirStore{Dir: dir}).Create(context.Background(), m)
	if errors.Is(err, certs.ErrExists) {
		return fmt.Errorf("%s already holds a CA (tls.crt); choose another --out", dir)
	}
	return err
}

func describeFile(w io.Writer, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cs, err := certs.ParseCertificatesPEM(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(cs) == 0 {
		return fmt.Errorf("%s: no certificates", path)
	}
	for i, c := range cs {
		fmt.Fprintf(w, "%s [%d]\n", path, i)
		describeCert(w, c, "  ")
	}
	return nil
}

func describeCert(w io.Writer, c *x509.Certificate, indent string) {
	var uris []string
	for _, u := range c.URIs {
		uris = append(uris, u.String())
	}
	kind := "leaf (SVID)"
	if c.IsCA {
		kind = "CA"
	}
	subject := c.Subject.String()
	if subject == "" {
		subject = "(empty)"
	}
	fmt.Fprintf(w, "%s%-10s %s\n", indent, "kind", kind)
	fmt.Fprintf(w, "%s%-10s %s\n", indent, "SPIFFE ID", strings.Join(uris, ", "))
	fmt.Fprintf(w, "%s%-10s %s\n", indent, "subject", subject)
	fmt.Fprintf(w, "%s%-10s %s\n", indent, "issuer", c.Issuer.String())
	fmt.Fprintf(w, "%s%-10s %s → %s (%s)\n", indent, "valid", c.NotBefore.UTC().Format(time.RFC3339),
		c.NotAfter.UTC().Format(time.RFC3339), c.NotAfter.Sub(c.NotBefore).Round(time.Minute))
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); ok {
		fmt.Fprintf(w, "%s%-10s ECDSA %s\n", indent, "key", k.Curve.Params().Name)
	} else {
		fmt.Fprintf(w, "%s%-10s %s\n", indent, "key", c.PublicKeyAlgorithm)
	}
}

func newCertsRequestCmd() *cobra.Command {
	var addr, node, tokenFile, bundleFile, tdName string
	var pods []string
	cmd := &cobra.Command{
		Use:   "request-svid --control-plane ADDR --node NODE --join-token-file FILE --trust-bundle FILE --pod NS/NAME...",
		Short: "Act as a node proxy in local mode: bootstrap the node identity, then request workload SVIDs",
		Long: `Bootstraps a node identity with a join token, exactly as a node proxy does, then asks
the control plane for an SVID for each --pod. Keys are generated here and never sent.
Refusals are printed with the control plane's reason; the exit code is 1 if any request failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			td, err := spiffeid.TrustDomainFromString(tdName)
			if err != nil {
				return fmt.Errorf("--trust-domain: %w", err)
			}
			bundle, err := x509bundle.Load(td, bundleFile)
			if err != nil {
				return fmt.Errorf("--trust-bundle: %w", err)
			}
			g := &manager.GRPCSigner{Addr: addr, Node: node, TrustDomain: td, Credential: manager.JoinTokenFile(tokenFile)}
			m, err := manager.New(manager.Config{Signer: g, TrustDomain: td, Bundle: bundle})
			if err != nil {
				return err
			}
			g.Bundle, g.NodeSVID = m, m
			defer g.Close()
			w := cmd.OutOrStdout()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			if err := m.BootstrapNode(ctx); err != nil {
				fmt.Fprintf(w, "✘ %s could not bootstrap: %s\n", node, grpcReason(err))
				return errors.New("node bootstrap failed")
			}
			nodeSVID, _ := m.NodeSVID()
			fmt.Fprintf(w, "✔ %s bootstrapped with its join token\n", node)
			describeSVID(w, nodeSVID)
			failed := 0
			for _, p := range pods {
				ns, name, ok := strings.Cut(p, "/")
				if !ok || ns == "" || name == "" {
					return fmt.Errorf("--pod %q: want NAMESPACE/NAME", p)
				}
				svid, err := m.AddWorkload(ctx, manager.PodRef{Namespace: ns, Name: name})
				if err != nil {
					failed++
					fmt.Fprintf(w, "✘ %s was refused an SVID for pod %s: %s\n", node, p, grpcReason(err))
					continue
				}
				fmt.Fprintf(w, "✔ %s got an SVID for pod %s\n", node, p)
				describeSVID(w, svid)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d requests refused", failed, len(pods))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "control-plane", "127.0.0.1:15012", "control plane address")
	cmd.Flags().StringVar(&node, "node", "", "node name to bootstrap as")
	cmd.Flags().StringVar(&tokenFile, "join-token-file", "", "file holding the node's join token")
	cmd.Flags().StringVar(&bundleFile, "trust-bundle", "", "PEM roots to verify the control plane (its state dir's trust-bundle.pem)")
	cmd.Flags().StringSliceVar(&pods, "pod", nil, "NAMESPACE/NAME of a pod to request an SVID for (repeatable)")
	trustDomainFlag(cmd, &tdName)
	for _, f := range []string{"node", "join-token-file", "trust-bundle"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func describeSVID(w io.Writer, s *x509svid.SVID) {
	leaf := s.Certificates[0]
	fmt.Fprintf(w, "    %-10s %s\n", "SPIFFE ID", s.ID)
	fmt.Fprintf(w, "    %-10s %s\n", "issuer", leaf.Issuer)
	fmt.Fprintf(w, "    %-10s %s → %s (%s)\n", "valid", leaf.NotBefore.UTC().Format(time.RFC3339),
		leaf.NotAfter.UTC().Format(time.RFC3339), leaf.NotAfter.Sub(leaf.NotBefore).Round(time.Minute))
	fmt.Fprintf(w, "    %-10s ECDSA P-256, generated here and never sent (CSR only)\n", "key")
}

// grpcReason renders a gRPC error as "Code: message".
func grpcReason(err error) string {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		s := se.GRPCStatus()
		return fmt.Sprintf("%s: %s", s.Code(), s.Message())
	}
	return err.Error()
}
