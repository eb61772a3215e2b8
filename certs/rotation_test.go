package certs_test

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
)

// peer is one side of a connection: its current SVID and the bundle it trusts.
type peer struct {
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

func issue(t *testing.T, ca *certs.CA, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	return certstest.SVID(t, ca, id)
}

// handshake runs a real mTLS 1.3 handshake over loopback TCP between client
// and server, each checking the other's exact identity, and echoes a byte.
func handshake(t *testing.T, client, server peer) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverCfg := tlsconfig.MTLSServerConfig(server.svid, server.bundle, tlsconfig.AuthorizeID(client.svid.ID))
	serverCfg.MinVersion = tls.VersionTLS13
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, serverCfg)
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		_, err = io.Copy(tc, io.LimitReader(tc, 1))
		done <- err
	}()
	clientCfg := tlsconfig.MTLSClientConfig(client.svid, client.bundle, tlsconfig.AuthorizeID(server.svid.ID))
	clientCfg.MinVersion = tls.VersionTLS13
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(&d, "tcp", ln.Addr().String(), clientCfg)
	if err != nil {
		<-done
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{1}); err != nil {
		return err
	}
	if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
		return err
	}
	return <-done
}

// TestRootRotation walks the procedure of certs/README.md ("Rotating the
// root") with real TLS handshakes between a client and a server whose
// certificates and bundles change the way they do in a cluster. At every
// step, every pair of certificates that can be in use at once must connect.
func TestRootRotation(t *testing.T) {
	clientID := workloadID(t, "shop", "frontend")
	serverID := workloadID(t, "shop", "cart")

	oldRoot, err := certs.NewRoot(td, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	caOld, err := certs.New(td, oldRoot, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	newRoot, err := certs.NewRoot(td, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	both := &certs.Material{CACrt: append(append([]byte{}, oldRoot.CACrt...), newRoot.CACrt...)}

	// Step 0: everything under the old root.
	clientOld := issue(t, caOld, clientID)
	serverOld := issue(t, caOld, serverID)
	if err := handshake(t, peer{clientOld, caOld.Bundle()}, peer{serverOld, caOld.Bundle()}); err != nil {
		t.Fatalf("step 0 (old root): %v", err)
	}

	// Step 1: add the new root to ca.crt; the old root still signs.
	caStep1, err := certs.New(td, &certs.Material{TLSCrt: oldRoot.TLSCrt, TLSKey: oldRoot.TLSKey, CACrt: both.CACrt}, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(caStep1.Bundle().X509Authorities()); n != 2 {
		t.Fatalf("step 1 bundle has %d roots, want 2", n)
	}
	oldBundle, bothBundle := caOld.Bundle(), caStep1.Bundle()
	// Peers pick up the new bundle at different times; old certs still work
	// whichever bundle each side has.
	for _, c := range []*x509bundle.Bundle{oldBundle, bothBundle} {
		for _, s := range []*x509bundle.Bundle{oldBundle, bothBundle} {
			if err := handshake(t, peer{clientOld, c}, peer{serverOld, s}); err != nil {
				t.Fatalf("step 1 (bundle grows, old certs): %v", err)
			}
		}
	}

	// Step 2: once every proxy has the two-root bundle, the new root signs.
	caNew, err := certs.New(td, &certs.Material{TLSCrt: newRoot.TLSCrt, TLSKey: newRoot.TLSKey, CACrt: both.CACrt}, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	serverNew := issue(t, caNew, serverID)
	clientNew := issue(t, caNew, clientID)
	// Certificates renew at different times: every old/new mix connects.
	for _, c := range []*x509svid.SVID{clientOld, clientNew} {
		for _, s := range []*x509svid.SVID{serverOld, serverNew} {
			if err := handshake(t, peer{c, bothBundle}, peer{s, bothBundle}); err != nil {
				t.Fatalf("step 2 (new root signs; client %s, server %s): %v",
					c.Certificates[0].Issuer, s.Certificates[0].Issuer, err)
			}
		}
	}
	// Why step 1 must finish first: a peer still on the old bundle rejects a
	// certificate from the new root.
	if err := handshake(t, peer{clientNew, bothBundle}, peer{serverOld, oldBundle}); err == nil {
		t.Fatal("a peer that never received the new root accepted a new-root certificate")
	}

	// Step 3: after the last old-root SVID has expired (24h + skew), drop the
	// old root from ca.crt.
	caFinal, err := certs.New(td, &certs.Material{TLSCrt: newRoot.TLSCrt, TLSKey: newRoot.TLSKey}, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, peer{clientNew, caFinal.Bundle()}, peer{serverNew, caFinal.Bundle()}); err != nil {
		t.Fatalf("step 3 (old root removed): %v", err)
	}
	if err := handshake(t, peer{clientOld, caFinal.Bundle()}, peer{serverNew, caFinal.Bundle()}); err == nil {
		t.Fatal("an old-root certificate was accepted after the old root was removed")
	}
}
