//go:build linux

package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Log keys of the progress reports.
const (
	logNode = "node"
	logPod  = "pod"
	logAddr = "addr"
	logDir  = "dir"
)

// How long each kind of process gets to become ready.
const (
	controlPlaneTimeout = 30 * time.Second
	nodeProxyTimeout    = 30 * time.Second
	echoTimeout         = 10 * time.Second
	stopGrace           = 5 * time.Second
)

// meshRun is the processes of a running mesh; Mesh.mu guards it.
type meshRun struct {
	sb      *Sandbox
	cp      *Process
	proxies []*Process          // by node index; nil while stopped
	echoes  map[string]*Process // by pod name; absent while stopped
}

// Up builds the mesh: the network ([Topology.Up], which first cleans up
// what an earlier run of the same name left), the config dir and join
// tokens, the control plane on node 0, a node proxy per node (unless
// NoNodeProxies), the CNI plugin's ADD for every pod, and weft-echo in every
// pod; it waits for each to be ready. On error everything is torn down and
// the logs are kept; the error says where.
func (c MeshConfig) Up(ctx context.Context) (*Mesh, error) {
	m, err := c.newMesh(newUID)
	if err != nil {
		return nil, err
	}
	if err := m.checkBinaries(); err != nil {
		return nil, err
	}
	m.log.Info("building the network", "nodes", len(m.plan.nodes), "pods", len(m.pods))
	sb, err := c.Topology.Up(ctx)
	if err != nil {
		return nil, err
	}
	m.run = meshRun{sb: sb, proxies: make([]*Process, len(m.plan.nodes)), echoes: map[string]*Process{}}
	if err := m.start(ctx); err != nil {
		m.KeepLogs()
		where := ""
		if m.logDir != "" {
			where = " (logs kept in " + m.logDir + ")"
		}
		return nil, errors.Join(fmt.Errorf("mesh %s: %w%s", m.plan.name, err, where), m.Down())
	}
	return m, nil
}

func (m *Mesh) checkBinaries() error {
	names := []string{"weft-control-plane", "weft-echo"}
	if !m.cfg.NoNodeProxies {
		names = append(names, "weft-node-proxy", "weft-cni")
	}
	for _, name := range names {
		path := m.bin(name)
		st, err := os.Stat(path)
		if err == nil && (st.IsDir() || st.Mode()&0o111 == 0) {
			err = errors.New("not an executable file")
		}
		if err != nil {
			hint := "run `make build`, or set BinDir"
			if name == "weft-node-proxy" {
				hint += "; or build the mesh without node proxies"
			}
			return fmt.Errorf("mesh %s: %s: %w (%s)", m.plan.name, path, err, hint)
		}
	}
	return nil
}

func (m *Mesh) bin(name string) string { return filepath.Join(m.binDir, name) }

func (m *Mesh) start(ctx context.Context) error {
	if err := m.openLogDir(); err != nil {
		return err
	}
	if err := m.writeFiles(); err != nil {
		return err
	}
	if err := m.run.sb.WriteHosts(m.hosts); err != nil {
		return err
	}
	if err := m.StartControlPlane(ctx); err != nil {
		return err
	}
	if m.cfg.BeforeNodeProxies != nil {
		if err := m.cfg.BeforeNodeProxies(ctx, m); err != nil {
			return err
		}
	}
	if !m.cfg.NoNodeProxies {
		// Start them all, then wait: they bootstrap in parallel.
		procs := make([]*Process, len(m.plan.nodes))
		for i := range m.plan.nodes {
			p, err := m.startNodeProxy(i)
			if err != nil {
				return err
			}
			procs[i] = p
		}
		for i, p := range procs {
			if err := m.waitNodeProxy(ctx, i, p); err != nil {
				return err
			}
		}
		// As a runtime does: the CNI plugin runs before the containers.
		for _, p := range m.pods {
			if _, err := m.CNI(ctx, "ADD", p.Name); err != nil {
				return err
			}
		}
	}
	procs := map[string]*Process{}
	for _, p := range m.pods {
		if p.NoEcho {
			continue
		}
		proc, err := m.startEcho(p)
		if err != nil {
			return err
		}
		procs[p.Name] = proc
	}
	for _, p := range m.pods {
		if proc := procs[p.Name]; proc != nil {
			if err := m.waitEcho(ctx, p, proc); err != nil {
				return err
			}
		}
	}
	m.log.Info("mesh ready", logDir, m.ConfigDir())
	return nil
}

func (m *Mesh) openLogDir() error {
	if m.cfg.LogDir == "" {
		d, err := os.MkdirTemp("", "weft-sandbox-"+m.plan.name+"-logs-")
		if err != nil {
			return err
		}
		m.logDir, m.ownLogs = d, true
		return nil
	}
	d, err := filepath.Abs(m.cfg.LogDir)
	if err == nil {
		err = os.MkdirAll(d, 0o755)
	}
	if err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	m.logDir = d
	return nil
}

// writeFiles writes the config dir, the join tokens and the per-node
// directories, all under the sandbox's Dir.
func (m *Mesh) writeFiles() error {
	dirs := []string{m.ConfigDir(), m.ControlPlaneStateDir()}
	for i := range m.plan.nodes {
		dirs = append(dirs, m.NodeProxyStateDir(i))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	var tokens strings.Builder
	for i, n := range m.plan.nodes {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		tok := hex.EncodeToString(b)
		fmt.Fprintf(&tokens, "%s %s\n", n.Name, tok)
		if err := os.WriteFile(m.JoinTokenFile(i), []byte(tok+"\n"), 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(m.joinTokens(), []byte(tokens.String()), 0o600); err != nil {
		return err
	}
	mf, err := m.manifests()
	if err != nil {
		return err
	}
	if err := m.Apply(MeshFile, string(mf)); err != nil {
		return err
	}
	if len(m.cfg.Extra) > 0 {
		return m.Apply(ExtraFile, string(m.extraManifests()))
	}
	return nil
}

// joinTokens is the control plane's --join-tokens file.
func (m *Mesh) joinTokens() string { return dirPath(m.plan.name) + "/join-tokens" }

// Apply writes content as file in the config dir, replacing it atomically
// if it exists. file is a base name ending in .yaml, .yml or .json. The
// control plane re-reads the directory every 200ms; a directory with a bad
// file keeps the last good state (its /readyz says so).
func (m *Mesh) Apply(file, content string) error {
	path, err := m.configFile(file)
	if err != nil {
		return err
	}
	tmp := filepath.Join(m.ConfigDir(), "."+file+".tmp") // not a config file name
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return fmt.Errorf("apply %s: %w", file, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("apply %s: %w", file, err)
	}
	return nil
}

// Delete removes file from the config dir. A missing file is not an error.
func (m *Mesh) Delete(file string) error {
	path, err := m.configFile(file)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", file, err)
	}
	return nil
}

func (m *Mesh) configFile(file string) (string, error) {
	switch {
	case file != filepath.Base(file) || strings.HasPrefix(file, "."):
		return "", fmt.Errorf("config file %q: want a base name not starting with '.'", file)
	case !strings.HasSuffix(file, ".yaml") && !strings.HasSuffix(file, ".yml") && !strings.HasSuffix(file, ".json"):
		return "", fmt.Errorf("config file %q: want .yaml, .yml or .json (the control plane reads no other)", file)
	}
	return filepath.Join(m.ConfigDir(), file), nil
}

// Sandbox returns the network layer.
func (m *Mesh) Sandbox() *Sandbox { return m.run.sb }

// Down stops every process, deletes the network, the config and state
// (the sandbox's Dir) and a temporary LogDir unless KeepLogs was called. It
// is idempotent.
func (m *Mesh) Down() error {
	m.mu.Lock()
	keep := m.keepLogs
	sb := m.run.sb
	m.mu.Unlock()
	var errs []error
	if sb != nil {
		errs = append(errs, sb.Down())
	}
	if m.ownLogs && !keep {
		errs = append(errs, os.RemoveAll(m.logDir))
	}
	return errors.Join(errs...)
}

// startLogged starts argv in the namespace at nsPath with stdout and stderr
// appended to logName in the log dir.
func (m *Mesh) startLogged(nsPath, logName string, argv []string) (*Process, error) {
	f, err := m.openLog(logName, strings.Join(argv, " "))
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	p := &Process{}
	if err := m.run.sb.StartCmd(nsPath, cmd, p); err != nil {
		return nil, err
	}
	return p, nil
}

// openLog opens logName in the log dir for appending and writes a header
// line saying what follows.
func (m *Mesh) openLog(logName, what string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(m.logDir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	fmt.Fprintf(f, "=== %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), what)
	return f, nil
}

// waitFor polls ready every 50ms until it succeeds, p exits, or timeout
// passes; the errors end with the last lines of logName.
func (m *Mesh) waitFor(ctx context.Context, what string, p *Process, logName string, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		err := ready(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited (%v) before it was ready%s", what, p.Wait(), m.tail(logName))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v%s", what, timeout, err, m.tail(logName))
		case <-tick.C:
		}
	}
}

// alive reports whether p is a process that has not exited.
func alive(p *Process) bool {
	if p == nil {
		return false
	}
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// tail returns the last lines of a log file, for error messages.
func (m *Mesh) tail(logName string) string {
	b, err := os.ReadFile(filepath.Join(m.logDir, logName))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "\n--- last lines of " + filepath.Join(m.logDir, logName) + ":\n" + strings.Join(lines, "\n")
}
