package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"time"
)

// pluginType is the "type" of weft-cni's entry in a conflist, and the name
// of its binary in the CNI bin directory.
const pluginType = "weft-cni"

// Defaults of the install and uninstall flags: the host's usual CNI
// directories, mounted under /host in the installer container.
const (
	defaultBinDir        = "/host/opt/cni/bin"
	defaultConfDir       = "/host/etc/cni/net.d"
	defaultWatchInterval = 5 * time.Second
)

// errNoConfig is returned while the conf dir holds no network configuration.
var errNoConfig = errors.New("no network configuration (*.conflist, *.conf, *.json)")

// runSubcommand runs "weft-cni install" or "weft-cni uninstall" (args
// without the program name) and returns the process exit code. Only called
// when CNI_COMMAND is unset, so the runtime's invocations never get here.
func runSubcommand(args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := runInstaller(ctx, args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "weft-cni %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

// isSubcommand reports whether name is one of runSubcommand's subcommands.
func isSubcommand(name string) bool { return name == "install" || name == "uninstall" }

// runInstaller parses the flags of args[0] ("install" or "uninstall") and
// runs it until done or, with --watch, until ctx ends.
func runInstaller(ctx context.Context, args []string, stderr io.Writer) error {
	cmd := args[0]
	fset := flag.NewFlagSet("weft-cni "+cmd, flag.ContinueOnError)
	fset.SetOutput(stderr)
	in := &installer{log: stderr}
	fset.StringVar(&in.binDir, "cni-bin-dir", defaultBinDir, "CNI bin directory (the host's, mounted in the container)")
	fset.StringVar(&in.confDir, "cni-conf-dir", defaultConfDir, "CNI network configuration directory (the host's, mounted in the container)")
	var pluginConfig string
	var watch, uninstallOnExit bool
	if cmd == "install" {
		fset.StringVar(&pluginConfig, "plugin-config", "", `JSON object merged into the weft-cni entry, e.g. {"socketPath":"/var/run/weft/node-proxy.sock"}`)
		fset.BoolVar(&watch, "watch", false, "keep running: re-add the entry (and the binary) whenever they go missing or change, until SIGTERM")
		fset.BoolVar(&uninstallOnExit, "uninstall-on-exit", false, "with --watch: uninstall on SIGTERM (entry from every conflist, binary)")
		fset.DurationVar(&in.interval, "watch-interval", defaultWatchInterval, "with --watch: how often the conflist and binary are checked")
	}
	if err := fset.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "weft-cni %s: unexpected arguments %q\n", cmd, fset.Args())
		return errUsage
	}
	if cmd == "uninstall" {
		return in.uninstall()
	}
	if uninstallOnExit && !watch {
		fmt.Fprintf(stderr, "weft-cni install: --uninstall-on-exit needs --watch\n")
		return errUsage
	}
	if in.interval <= 0 {
		fmt.Fprintf(stderr, "weft-cni install: --watch-interval must be positive\n")
		return errUsage
	}
	entry, err := pluginEntry(pluginConfig)
	if err != nil {
		return err
	}
	in.entry = entry
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	in.self = self
	if !watch {
		return in.install()
	}
	return in.watch(ctx, uninstallOnExit)
}

// pluginEntry builds weft-cni's conflist entry: {"type": "weft-cni"} merged
// with the JSON object config, validated as the plugin would parse it.
func pluginEntry(config string) (map[string]any, error) {
	entry := map[string]any{}
	if strings.TrimSpace(config) != "" {
		if err := json.Unmarshal([]byte(config), &entry); err != nil || entry == nil {
			return nil, fmt.Errorf("--plugin-config: not a JSON object: %q", config)
		}
	}
	if t, ok := entry["type"]; ok && t != pluginType {
		return nil, fmt.Errorf("--plugin-config: type %v: must be %q or absent", t, pluginType)
	}
	entry["type"] = pluginType
	raw, err := json.Marshal(entry)
	if err != nil {
		return nil, fmt.Errorf("--plugin-config: %w", err)
	}
	if _, err := parseConfig(raw); err != nil {
		return nil, fmt.Errorf("--plugin-config: %w", err)
	}
	// Normalized (numbers as float64), to compare with entries read back.
	entry = map[string]any{}
	if err := json.Unmarshal(raw, &entry); err != nil {
		return nil, err
	}
	return entry, nil
}

// installer puts weft-cni in place on a node, and takes it away.
type installer struct {
	binDir   string
	confDir  string
	self     string         // the executable copied to binDir
	entry    map[string]any // weft-cni's conflist entry
	interval time.Duration  // --watch polling interval
	log      io.Writer
}

func (in *installer) logf(format string, args ...any) {
	fmt.Fprintf(in.log, "%s weft-cni: %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// install copies the binary and adds the entry to the primary conflist once.
func (in *installer) install() error {
	if err := in.installBinary(); err != nil {
		return err
	}
	_, err := in.installEntry()
	return err
}

// watch installs, then re-checks every interval until ctx ends. Failures
// are logged (once while they last) and retried.
func (in *installer) watch(ctx context.Context, uninstallOnExit bool) error {
	binaryDone := false
	lastErr := ""
	tick := time.NewTicker(in.interval)
	defer tick.Stop()
	for {
		err := func() error {
			if !binaryDone {
				if err := in.installBinary(); err != nil {
					return err
				}
				binaryDone = true
			} else if _, err := os.Stat(filepath.Join(in.binDir, pluginType)); errors.Is(err, fs.ErrNotExist) {
				in.logf("%s disappeared: copying it again", filepath.Join(in.binDir, pluginType))
				if err := in.installBinary(); err != nil {
					return err
				}
			}
			_, err := in.installEntry()
			return err
		}()
		switch {
		case err == nil && lastErr != "":
			in.logf("installed after an earlier failure")
			lastErr = ""
		case errors.Is(err, errNoConfig) && lastErr != err.Error():
			in.logf("waiting for the cluster's CNI to write its conflist: %v", err)
		case err != nil && lastErr != err.Error():
			in.logf("install failed, retrying every %s: %v", in.interval, err)
		}
		if err != nil {
			lastErr = err.Error()
		}
		select {
		case <-ctx.Done():
			if !uninstallOnExit {
				in.logf("stopping; weft-cni stays installed")
				return nil
			}
			in.logf("stopping; uninstalling")
			return in.uninstall()
		case <-tick.C:
		}
	}
}

// installBinary copies in.self to <binDir>/weft-cni atomically, mode 0755.
func (in *installer) installBinary() error {
	dst := filepath.Join(in.binDir, pluginType)
	src, err := os.Open(in.self)
	if err != nil {
		return fmt.Errorf("open own executable: %w", err)
	}
	defer src.Close()
	if srcInfo, err := src.Stat(); err == nil {
		if dstInfo, err := os.Stat(dst); err == nil && os.SameFile(srcInfo, dstInfo) {
			return nil // running from the bin dir itself
		}
	}
	if err := writeAtomic(dst, 0o755, nil, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	}); err != nil {
		return fmt.Errorf("install binary: %w", err)
	}
	in.logf("installed %s", dst)
	return nil
}

// confFiles lists the network configuration files of dir in the order the
// runtime (libcni) considers them: lexically, extensions .conf, .conflist
// and .json.
func confFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		switch filepath.Ext(e.Name()) {
		case ".conf", ".conflist", ".json":
			if e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0 {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	}
	sort.Strings(files)
	return files, nil
}

// installEntry adds the weft-cni entry to the primary network configuration
// (the lexically first file, which the runtime uses) or updates it in
// place. It reports whether the file was rewritten; a file already holding
// the entry is left untouched.
func (in *installer) installEntry() (bool, error) {
	files, err := confFiles(in.confDir)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", in.confDir, err)
	}
	if len(files) == 0 {
		return false, fmt.Errorf("%s: %w", in.confDir, errNoConfig)
	}
	path := files[0]
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	conf, err := parseConfList(data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if conf.plugins == nil {
		return false, fmt.Errorf("%s: a single-plugin network configuration (no \"plugins\" list) cannot chain weft-cni; "+
			"the runtime uses this file because it sorts first: convert it to a .conflist (the cluster's CNI usually has an option for that)", path)
	}
	want, err := entryJSON(in.entry)
	if err != nil {
		return false, err
	}
	found, changed := false, false
	var plugins []json.RawMessage
	for _, p := range conf.plugins {
		if pluginTypeOf(p) != pluginType {
			plugins = append(plugins, p)
			continue
		}
		if found { // a duplicate: drop it
			changed = true
			continue
		}
		found = true
		var have map[string]any
		if err := json.Unmarshal(p, &have); err != nil || !reflect.DeepEqual(have, in.entry) {
			changed = true
			p = want
		}
		plugins = append(plugins, p)
	}
	if !found {
		plugins = append(plugins, want)
		changed = true
	}
	if !changed {
		return false, nil
	}
	if err := conf.setPlugins(plugins); err != nil {
		return false, err
	}
	if err := writeConf(path, conf); err != nil {
		return false, err
	}
	if found {
		in.logf("updated the weft-cni entry of %s", path)
	} else {
		in.logf("added weft-cni to %s", path)
	}
	return true, nil
}

// uninstall removes the weft-cni entry from every conflist of the conf dir,
// then the binary. Files it cannot parse are left alone.
func (in *installer) uninstall() error {
	var errs []error
	files, err := confFiles(in.confDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("read %s: %w", in.confDir, err))
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conf, err := parseConfList(data)
		if err != nil || conf.plugins == nil {
			continue // not ours to judge; it holds no entry we could have added
		}
		var plugins []json.RawMessage
		for _, p := range conf.plugins {
			if pluginTypeOf(p) != pluginType {
				plugins = append(plugins, p)
			}
		}
		if len(plugins) == len(conf.plugins) {
			continue
		}
		if plugins == nil {
			plugins = []json.RawMessage{}
		}
		if err := conf.setPlugins(plugins); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if err := writeConf(path, conf); err != nil {
			errs = append(errs, err)
			continue
		}
		in.logf("removed weft-cni from %s", path)
	}
	bin := filepath.Join(in.binDir, pluginType)
	switch err := os.Remove(bin); {
	case err == nil:
		in.logf("removed %s", bin)
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// confList is a network configuration whose top-level members keep their
// order and bytes; only "plugins" is rewritten.
type confList struct {
	keys    []string
	values  map[string]json.RawMessage
	plugins []json.RawMessage // nil when there is no "plugins" member
}

// parseConfList parses a JSON object, keeping its members in order.
func parseConfList(data []byte) (*confList, error) {
	if !json.Valid(data) {
		return nil, errors.New("not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	c := &confList{values: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := c.values[key]; !dup {
			c.keys = append(c.keys, key)
		}
		c.values[key] = v
	}
	if raw, ok := c.values["plugins"]; ok {
		if err := json.Unmarshal(raw, &c.plugins); err != nil {
			return nil, fmt.Errorf(`"plugins": not a list: %w`, err)
		}
		if c.plugins == nil {
			c.plugins = []json.RawMessage{}
		}
	}
	return c, nil
}

func (c *confList) setPlugins(plugins []json.RawMessage) error {
	raw, err := json.Marshal(plugins)
	if err != nil {
		return err
	}
	c.plugins = plugins
	c.values["plugins"] = raw
	return nil
}

// encode writes the object back, members in their original order, indented.
func (c *confList) encode() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range c.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(c.values[k])
	}
	b.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// entryJSON encodes a conflist entry with "type" first, then the other
// members sorted.
func entryJSON(entry map[string]any) (json.RawMessage, error) {
	rest := make(map[string]any, len(entry))
	for k, v := range entry {
		if k != "type" {
			rest[k] = v
		}
	}
	tb, err := json.Marshal(entry["type"])
	if err != nil {
		return nil, err
	}
	rb, err := json.Marshal(rest)
	if err != nil {
		return nil, err
	}
	out := append([]byte(`{"type":`), tb...)
	if len(rest) > 0 {
		out = append(append(out, ','), rb[1:]...)
	} else {
		out = append(out, '}')
	}
	return out, nil
}

// pluginTypeOf returns the "type" of a conflist entry, "" if it has none.
func pluginTypeOf(p json.RawMessage) string {
	var v struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(p, &v)
	return v.Type
}

// writeConf writes c to path atomically, keeping the file's mode and owner.
func writeConf(path string, c *confList) error {
	data, err := c.encode()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return writeAtomic(path, fi.Mode().Perm(), fi, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeAtomic writes path through a temporary file in the same directory
// (a name the runtime ignores: no .conf/.conflist/.json extension) and a
// rename, so readers see the old or the new file, never a partial one. With
// owner set, the new file gets owner's uid and gid (best effort).
func writeAtomic(path string, mode fs.FileMode, owner fs.FileInfo, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".weft-tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if owner != nil {
		if st, ok := owner.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid()) {
			if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("keep the owner of %s: %w", path, err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
