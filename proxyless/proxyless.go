// Package proxyless lets gRPC-Go applications take their routing from the
// Weft control plane directly, with no proxy in between ("proxyless gRPC").
//
// Import it for its side effect, which registers the xDS channel
// credentials "weft-spiffe", then dial "xds:///<service>.<namespace>.svc.cluster.local:<port>"
// with a bootstrap such as the one Bootstrap writes:
//
//	import _ "github.com/weftmesh/weft/proxyless"
//	import _ "google.golang.org/grpc/xds"
//
//	GRPC_XDS_BOOTSTRAP=/etc/weft/grpc-bootstrap.json ./app
//
// The control plane on port 15012 serves xDS over mutual TLS: the client
// presents an SVID (files certificate_file / private_key_file, re-read at
// every connection so rotation just works) and verifies that the server is
// spiffe://<trust-domain>/weft/control-plane under the roots in
// trust_bundle_file. The xDS node id must be the node name in the client's
// certificate (spiffe://<td>/weft/node/<node>). See docs/tasks/proxyless-grpc.md.
package proxyless

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/xds/bootstrap"

	"github.com/weftmesh/weft/certs"
)

// CredentialsName is the channel_creds "type" of the bootstrap.
const CredentialsName = "weft-spiffe"

func init() { bootstrap.RegisterChannelCredentials(builder{}) }

// CredentialsConfig is the channel_creds "config" object.
type CredentialsConfig struct {
	CertificateFile string `json:"certificate_file"`
	PrivateKeyFile  string `json:"private_key_file"`
	TrustBundleFile string `json:"trust_bundle_file"`
	TrustDomain     string `json:"trust_domain"`
}

type builder struct{}

func (builder) Name() string { return CredentialsName }

func (builder) Build(raw json.RawMessage) (credentials.Bundle, func(), error) {
	var cfg CredentialsConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, nil, fmt.Errorf("%s config: %w", CredentialsName, err)
	}
	tc, err := cfg.TLS()
	if err != nil {
		return nil, nil, err
	}
	return &bundle{creds: credentials.NewTLS(tc)}, func() {}, nil
}

// TLS returns the client TLS configuration the credentials use.
func (c CredentialsConfig) TLS() (*tls.Config, error) {
	if c.CertificateFile == "" || c.PrivateKeyFile == "" || c.TrustBundleFile == "" {
		return nil, errors.New(CredentialsName + ": certificate_file, private_key_file and trust_bundle_file are required")
	}
	tdName := c.TrustDomain
	if tdName == "" {
		tdName = certs.DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(tdName)
	if err != nil {
		return nil, fmt.Errorf("%s: trust_domain: %w", CredentialsName, err)
	}
	svid := fileSVID{cert: c.CertificateFile, key: c.PrivateKeyFile}
	roots := fileBundle{td: td, path: c.TrustBundleFile}
	if _, err := svid.GetX509SVID(); err != nil {
		return nil, err
	}
	if _, err := roots.GetX509BundleForTrustDomain(td); err != nil {
		return nil, err
	}
	cfg := tlsconfig.MTLSClientConfig(svid, roots, tlsconfig.AuthorizeID(certs.ControlPlaneID(td)))
	cfg.MinVersion = tls.VersionTLS13
	return cfg, nil
}

type bundle struct {
	creds credentials.TransportCredentials
}

func (b *bundle) TransportCredentials() credentials.TransportCredentials { return b.creds }
func (b *bundle) PerRPCCredentials() credentials.PerRPCCredentials       { return nil }
func (b *bundle) NewWithMode(string) (credentials.Bundle, error)         { return b, nil }

// fileSVID reads the SVID files at every handshake.
type fileSVID struct{ cert, key string }

func (f fileSVID) GetX509SVID() (*x509svid.SVID, error) {
	s, err := x509svid.Load(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("%s: load SVID: %w", CredentialsName, err)
	}
	return s, nil
}

// fileBundle reads the trust bundle at every handshake.
type fileBundle struct {
	td   spiffeid.TrustDomain
	path string
}

func (f fileBundle) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b, err := x509bundle.Load(f.td, f.path)
	if err != nil {
		return nil, fmt.Errorf("%s: load trust bundle: %w", CredentialsName, err)
	}
	return b.GetX509BundleForTrustDomain(td)
}

// Bootstrap returns a gRPC xDS bootstrap (JSON) for a client on node that
// talks to the control plane at addr with the given credentials.
func Bootstrap(addr, node string, creds CredentialsConfig) ([]byte, error) {
	if addr == "" || node == "" {
		return nil, errors.New("bootstrap: control-plane address and node are required")
	}
	doc := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      addr,
			"channel_creds":   []any{map[string]any{"type": CredentialsName, "config": creds}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": node},
	}
	return json.MarshalIndent(doc, "", "  ")
}
