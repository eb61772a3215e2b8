//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/tests/sandbox"
)

// nginxConf is the server -backend nginx runs in plain-n1 and mesh-n1: one
// process (no master), no access log, keep-alive without limits, a short
// answer naming the pod, the peer address and X-Weft-Peer-Identity (for
// the path check), and /bulk, a file of BulkSize bytes sent with sendfile.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path %[1]s/tmp/body;
  proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fastcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi;
  scgi_temp_path %[1]s/tmp/scgi;
  default_type text/plain;
  server {
    %[2]s
    root %[3]s;
    location = / { return 200 "pod=%[4]s peer=$remote_addr identity=$http_x_weft_peer_identity\n"; }
    location = /bulk { }
  }
}
`

// startNginx runs nginx in plain-n1 (nginxPort) and mesh-n1 (nginxPort and
// nginxHTTPPort) and waits for its ports.
func (b *bench) startNginx(ctx context.Context) error {
	dir := filepath.Join(b.c.Out, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bulk := make([]byte, b.c.BulkSize)
	for i := range bulk {
		bulk[i] = "weft-nginx-bulk-data-"[i%21]
	}
	if err := os.WriteFile(filepath.Join(dir, "bulk"), bulk, 0o644); err != nil {
		return err
	}
	for _, name := range []string{"plain-n1", "mesh-n1"} {
		pod, _ := b.m.Pod(name)
		ports := []int{nginxPort}
		if name == "mesh-n1" {
			ports = append(ports, nginxHTTPPort)
		}
		listen := ""
		for _, port := range ports {
			listen += fmt.Sprintf("listen %d; ", port)
		}
		pd := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(pd, "tmp"), 0o755); err != nil {
			return err
		}
		conf := filepath.Join(pd, "nginx.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, pd, listen, dir, name)), 0o644); err != nil {
			return err
		}
		argv := []string{b.t.nginx, "-p", pd, "-c", conf, "-e", filepath.Join(pd, "error.log")}
		if _, err := b.startLogged(pod.NetNSPath, "nginx-"+name+".log", argv); err != nil {
			return err
		}
		for _, port := range ports {
			err := poll(ctx, 10*time.Second, fmt.Sprintf("nginx on :%d in %s", port, name), func(ctx context.Context) error {
				c, err := sandbox.Dial(ctx, pod.NetNSPath, "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
				if err == nil {
					c.Close()
				}
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}
