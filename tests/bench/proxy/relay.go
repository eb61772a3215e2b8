//go:build linux

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/tests/sandbox"
)

// The reference row: two stdlib Go TLS relays, one mutual-TLS connection
// per application connection, as PERFORMANCE.md's "stdlib Go TLS relay"
// peer (TLS 1.3, ECDSA P-256, X25519, session resumption). It gives, in the
// same run and the same topology, the cost of the design the node proxy
// is meant to beat.
//
//	plain-n0 -> relay in node 0 (10.199.0.1:18080, plain TCP in, TLS out)
//	         -> relay in node 1 (10.199.0.2:18443, TLS in, plain TCP out)
//	         -> plain-n1's server
const (
	relayInPort  = 18080
	relayTLSPort = 18443
	relayName    = "Go TLS relays"
)

// startRelays writes the relays' certificates into dir, starts this
// program's relay subcommand in both nodes, and returns the path and the
// relays as processes to measure.
func (b *bench) startRelays(ctx context.Context, target netip.AddrPort, dir string) ([]proxyProc, error) {
	if err := writeRelayCerts(dir); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	nodes := b.m.Nodes()
	in := netip.AddrPortFrom(nodes[0].IP, relayInPort)
	mid := netip.AddrPortFrom(nodes[1].IP, relayTLSPort)
	var procs []proxyProc
	for i, args := range [][]string{
		{"relay", "tls-client", in.String(), mid.String(), dir},
		{"relay", "tls-server", mid.String(), target.String(), dir},
	} {
		p, err := b.startLogged(nodes[i].NetNSPath, "relay-"+nodes[i].Name+".log", append([]string{self}, args...))
		if err != nil {
			return nil, err
		}
		procs = append(procs, proxyProc{Node: nodes[i].Name, PID: p.PID, Role: []string{"client", "server"}[i]})
		addr := args[2]
		err = poll(ctx, 10*time.Second, "relay on "+nodes[i].Name, func(ctx context.Context) error {
			c, err := sandbox.Dial(ctx, nodes[i].NetNSPath, "tcp4", addr)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return procs, nil
}

// writeRelayCerts writes a self-signed ECDSA P-256 certificate and key for
// each relay (client.pem, client-key.pem, server.pem, server-key.pem);
// each trusts exactly the other's.
func writeRelayCerts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, name := range []string{"client", "server"} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 1)),
			Subject:      pkix.Name{CommonName: "relay-" + name},
			DNSNames:     []string{"relay-" + name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
			IsCA:         true, BasicConstraintsValid: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return err
		}
		kd, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// runRelay is the hidden subcommand `relay MODE LISTEN UPSTREAM CERTDIR`:
// tls-client accepts plain TCP and dials UPSTREAM with TLS; tls-server
// accepts TLS (requiring the client's certificate) and dials UPSTREAM in
// plain TCP. Each connection is copied both ways with io.Copy, half-closes
// passed on.
func runRelay(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: relay tls-client|tls-server LISTEN UPSTREAM CERTDIR")
	}
	mode, listen, upstream, dir := args[0], args[1], args[2], args[3]
	me, peer := "client", "server"
	if mode == "tls-server" {
		me, peer = peer, me
	} else if mode != "tls-client" {
		return fmt.Errorf("relay mode %q", mode)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, me+".pem"), filepath.Join(dir, me+"-key.pem"))
	if err != nil {
		return err
	}
	peerPEM, err := os.ReadFile(filepath.Join(dir, peer+".pem"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(peerPEM)
	cfg := &tls.Config{
		Certificates:     []tls.Certificate{cert},
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519},
	}
	var ln net.Listener
	var dial func() (net.Conn, error)
	if mode == "tls-client" {
		cfg.RootCAs, cfg.ServerName = roots, "relay-server"
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
		if ln, err = net.Listen("tcp", listen); err != nil {
			return err
		}
		dial = func() (net.Conn, error) { return tls.Dial("tcp", upstream, cfg) }
	} else {
		cfg.ClientCAs, cfg.ClientAuth = roots, tls.RequireAndVerifyClientCert
		if ln, err = tls.Listen("tcp", listen, cfg); err != nil {
			return err
		}
		dial = func() (net.Conn, error) { return net.Dial("tcp", upstream) }
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go relayConn(c, dial)
	}
}

func relayConn(down net.Conn, dial func() (net.Conn, error)) {
	defer down.Close()
	up, err := dial()
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay: dial:", err)
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, down)
		halfClose(up)
		close(done)
	}()
	_, _ = io.Copy(down, up)
	halfClose(down)
	<-done
}

func halfClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
