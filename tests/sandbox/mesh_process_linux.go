//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
)

// The mesh's processes: control plane, node proxies, CNI plugin, weft-echo.

// StartControlPlane starts weft-control-plane in node 0's namespace and
// waits until it has written the trust bundle and its /readyz answers. Up
// calls it; call it again after StopControlPlane. The CA persists in
// ControlPlaneStateDir across restarts.
func (m *Mesh) StartControlPlane(ctx context.Context) error {
	n0 := m.plan.nodes[0]
	m.mu.Lock()
	running := alive(m.run.cp)
	m.mu.Unlock()
	if running {
		return errors.New("start control plane: already running")
	}
	argv := []string{m.bin("weft-control-plane"),
		"--config-dir", m.ConfigDir(), "--state-dir", m.ControlPlaneStateDir(),
		"--join-tokens", m.joinTokens(), "--listen", m.ControlPlane().String(),
		"--admin-listen", ControlPlaneAdmin, "--poll-interval", "200ms"}
	p, err := m.startLogged(n0.NetNSPath, "control-plane.log", argv)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.run.cp = p
	m.mu.Unlock()
	err = m.waitFor(ctx, "control plane", p, "control-plane.log", controlPlaneTimeout, func(ctx context.Context) error {
		if _, err := os.Stat(m.TrustBundle()); err != nil {
			return err
		}
		_, err := httpGet(ctx, n0.NetNSPath, "http://"+ControlPlaneAdmin+"/readyz")
		return err
	})
	if err == nil {
		m.log.Info("control plane ready", logAddr, m.ControlPlane())
	}
	return err
}

// StopControlPlane stops the control plane (SIGTERM, then SIGKILL after 5s).
func (m *Mesh) StopControlPlane() error {
	m.mu.Lock()
	p := m.run.cp
	m.run.cp = nil
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Stop(stopGrace)
}

// ControlPlaneAdminGet GETs path (such as /readyz or /debug/config?node=N)
// from the control plane's admin server and returns the body; a status
// other than 200 is an error holding the body.
func (m *Mesh) ControlPlaneAdminGet(ctx context.Context, path string) ([]byte, error) {
	return httpGet(ctx, m.plan.nodes[0].NetNSPath, "http://"+ControlPlaneAdmin+path)
}

// NodeProxy returns node i's weft-node-proxy process, nil while stopped.
func (m *Mesh) NodeProxy(node int) *Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.run.proxies[node]
}

// StartNodeProxy starts weft-node-proxy on node i and waits until its
// readiness endpoint answers 200.
func (m *Mesh) StartNodeProxy(ctx context.Context, node int) error {
	p, err := m.startNodeProxy(node)
	if err != nil {
		return err
	}
	return m.waitNodeProxy(ctx, node, p)
}

// StopNodeProxy stops node i's node proxy (SIGTERM, then SIGKILL after
// 5s). Its pods keep their capture rules, as on a real node.
func (m *Mesh) StopNodeProxy(node int) error {
	if node < 0 || node >= len(m.plan.nodes) {
		return fmt.Errorf("stop node proxy: no node %d", node)
	}
	m.mu.Lock()
	p := m.run.proxies[node]
	m.run.proxies[node] = nil
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Stop(stopGrace)
}

// RestartNodeProxy stops and starts node i's node proxy; it re-adopts its
// pods from its state dir.
func (m *Mesh) RestartNodeProxy(ctx context.Context, node int) error {
	if err := m.StopNodeProxy(node); err != nil {
		return err
	}
	return m.StartNodeProxy(ctx, node)
}

func (m *Mesh) startNodeProxy(i int) (*Process, error) {
	if i < 0 || i >= len(m.plan.nodes) {
		return nil, fmt.Errorf("start node proxy: no node %d", i)
	}
	if m.cfg.NoNodeProxies {
		return nil, fmt.Errorf("start node proxy: mesh %s has no node proxies", m.plan.name)
	}
	n := m.plan.nodes[i]
	m.mu.Lock()
	running := alive(m.run.proxies[i])
	m.mu.Unlock()
	if running {
		return nil, fmt.Errorf("start node proxy on %s: already running", n.Name)
	}
	argv := []string{m.bin("weft-node-proxy"),
		"--node", n.Name,
		"--control-plane", m.ControlPlane().String(),
		"--join-token-file", m.JoinTokenFile(i),
		"--ca-bundle", m.TrustBundle(),
		"--enroll-socket", m.NodeProxySocket(i),
		"--state-dir", m.NodeProxyStateDir(i),
		"--probe-sources", netip.PrefixFrom(n.Gateway, 32).String(),
		"--log-level", "debug"}
	if m.cfg.NodeProxyArgs != nil {
		argv = append(argv, m.cfg.NodeProxyArgs(i)...)
	}
	p, err := m.startLogged(n.NetNSPath, "node-proxy-"+n.Name+".log", argv)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.run.proxies[i] = p
	m.mu.Unlock()
	return p, nil
}

func (m *Mesh) waitNodeProxy(ctx context.Context, i int, p *Process) error {
	n := m.plan.nodes[i]
	url := "http://" + netip.AddrPortFrom(n.IP, NodeProxyReadinessPort).String() + "/healthz/ready"
	err := m.waitFor(ctx, "node proxy on "+n.Name, p, "node-proxy-"+n.Name+".log", nodeProxyTimeout, func(ctx context.Context) error {
		_, err := httpGet(ctx, n.NetNSPath, url)
		return err
	})
	if err == nil {
		m.log.Info("node proxy ready", logNode, n.Name)
	}
	return err
}

// CNI runs the weft-cni plugin for pod as a container runtime on the pod's
// node would: in the node's namespace, with CNI_COMMAND command (ADD, DEL
// or CHECK), the pod's namespace as CNI_NETNS, kubelet's CNI_ARGS, and a
// network configuration naming the node proxy's socket (no prevResult: the
// sandbox has already wired the pod). It returns the plugin's standard
// output; its standard error goes to cni.log. Up runs ADD for every pod,
// enrolled or not: the node proxy decides, as in a cluster.
func (m *Mesh) CNI(ctx context.Context, command, pod string) ([]byte, error) {
	p, ok := m.Pod(pod)
	if !ok {
		return nil, fmt.Errorf("cni %s: no pod %s", command, pod)
	}
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "weft", "type": "weft-cni",
		"socketPath": m.NodeProxySocket(p.NodeIndex)})
	cmd := exec.CommandContext(ctx, m.bin("weft-cni"))
	cmd.Env = []string{
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=" + p.Name,
		"CNI_NETNS=" + p.NetNSPath,
		"CNI_IFNAME=eth0",
		"CNI_PATH=" + m.binDir,
		fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s",
			p.Namespace, p.Name, p.Name, p.UID),
	}
	cmd.Stdin = bytes.NewReader(conf)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	logf, err := m.openLog("cni.log", fmt.Sprintf("CNI %s %s/%s", command, p.Namespace, p.Name))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	proc := &Process{}
	if err := m.run.sb.StartCmd(m.plan.nodes[p.NodeIndex].NetNSPath, cmd, proc); err != nil {
		return nil, err
	}
	if err := proc.Wait(); err != nil {
		return stdout.Bytes(), fmt.Errorf("weft-cni %s %s/%s: %w: %s", command, p.Namespace, p.Name, err, bytes.TrimSpace(stdout.Bytes()))
	}
	m.log.Info("CNI "+command, logPod, p.Namespace+"/"+p.Name)
	return stdout.Bytes(), nil
}

// StartEcho starts weft-echo in pod and waits for its ports. Up calls it
// for every pod without NoEcho.
func (m *Mesh) StartEcho(ctx context.Context, pod string) error {
	p, ok := m.Pod(pod)
	if !ok {
		return fmt.Errorf("start echo: no pod %s", pod)
	}
	proc, err := m.startEcho(p)
	if err != nil {
		return err
	}
	return m.waitEcho(ctx, p, proc)
}

// StopEcho stops weft-echo in pod (SIGTERM, then SIGKILL after 5s).
func (m *Mesh) StopEcho(pod string) error {
	m.mu.Lock()
	p := m.run.echoes[pod]
	delete(m.run.echoes, pod)
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Stop(stopGrace)
}

func (m *Mesh) startEcho(p MeshPod) (*Process, error) {
	m.mu.Lock()
	running := alive(m.run.echoes[p.Name])
	m.mu.Unlock()
	if running {
		return nil, fmt.Errorf("start echo in %s: already running", p.Name)
	}
	argv := []string{m.bin("weft-echo"), "--pod", p.Name, "--namespace", p.Namespace, "--node", p.Node}
	if p.ServerFirst {
		argv = append(argv, "--server-first")
	}
	proc, err := m.startLogged(p.NetNSPath, "echo-"+p.Name+".log", argv)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.run.echoes[p.Name] = proc
	m.mu.Unlock()
	return proc, nil
}

// waitEcho waits until every weft-echo port accepts connections, dialled
// on loopback inside the pod (which capture rules leave alone).
func (m *Mesh) waitEcho(ctx context.Context, p MeshPod, proc *Process) error {
	return m.waitFor(ctx, "weft-echo in "+p.Name, proc, "echo-"+p.Name+".log", echoTimeout, func(ctx context.Context) error {
		for _, port := range []int{EchoHTTPPort, EchoGRPCPort, EchoTCPPort} {
			c, err := Dial(ctx, p.NetNSPath, "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})
}
