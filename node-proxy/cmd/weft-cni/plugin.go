package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/weftmesh/weft/node-proxy/internal/enroll"
)

// Config is the plugin's entry in the conflist.
type Config struct {
	types.PluginConf

	// SocketPath is the node proxy's enrollment socket. Empty means
	// enroll.DefaultSocketPath.
	SocketPath string `json:"socketPath,omitempty"`
	// FailOpen lets ADD and CHECK succeed when the node proxy is
	// unreachable. False (the default) fails them: see the package doc.
	FailOpen bool `json:"failOpen,omitempty"`
	// TimeoutSeconds bounds each request to the node proxy. Zero means
	// enroll.DefaultTimeout.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// parseConfig decodes and validates the network configuration on stdin.
func parseConfig(stdin []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(stdin, &c); err != nil {
		return nil, fmt.Errorf("parse network configuration: %w", err)
	}
	if c.SocketPath != "" && !filepath.IsAbs(c.SocketPath) {
		return nil, fmt.Errorf("socketPath %q: must be absolute", c.SocketPath)
	}
	if c.TimeoutSeconds < 0 {
		return nil, fmt.Errorf("timeoutSeconds %d: must not be negative", c.TimeoutSeconds)
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return nil, fmt.Errorf("parse prevResult: %w", err)
	}
	return &c, nil
}

func (c *Config) client() *enroll.Client {
	return &enroll.Client{SocketPath: c.SocketPath, Timeout: time.Duration(c.TimeoutSeconds) * time.Second}
}

// podRef reads the pod's name from CNI_ARGS ("K=V;K=V"). ok is false when
// the container is not a Kubernetes pod (no namespace and name).
func podRef(cniArgs string) (ref enroll.PodRef, ok bool, err error) {
	for _, kv := range strings.Split(cniArgs, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.TrimSpace(k) {
		case "K8S_POD_NAMESPACE":
			ref.Namespace = v
		case "K8S_POD_NAME":
			ref.Name = v
		case "K8S_POD_UID":
			ref.UID = v
		}
	}
	if ref.Namespace == "" && ref.Name == "" {
		return enroll.PodRef{}, false, nil
	}
	if ref.Namespace == "" || ref.Name == "" || ref.UID == "" {
		return enroll.PodRef{}, false, fmt.Errorf("CNI_ARGS %q: need K8S_POD_NAMESPACE, K8S_POD_NAME and K8S_POD_UID", cniArgs)
	}
	if err := enroll.ValidUID(ref.UID); err != nil {
		return enroll.PodRef{}, false, fmt.Errorf("CNI_ARGS: %w", err)
	}
	return ref, true, nil
}

// plugin runs the CNI commands; stdout gets results, stderr warnings.
type plugin struct {
	stdout io.Writer
	stderr io.Writer
}

func (p *plugin) add(args *skel.CmdArgs) error {
	conf, err := parseConfig(args.StdinData)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	ref, ok, err := podRef(args.Args)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	if ok {
		pod := enroll.Pod{UID: ref.UID, Namespace: ref.Namespace, Name: ref.Name, NetNSPath: args.Netns}
		_, err := conf.client().Add(context.Background(), pod)
		if err := p.decide(conf, "enroll pod "+ref.String(), err); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(p.stderr, "weft-cni: container %s is not a Kubernetes pod (no K8S_POD_NAMESPACE/K8S_POD_NAME): not enrolled\n", args.ContainerID)
	}
	return p.printPrevResult(conf)
}

func (p *plugin) check(args *skel.CmdArgs) error {
	conf, err := parseConfig(args.StdinData)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	ref, ok, err := podRef(args.Args)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	if !ok {
		return nil
	}
	_, err = conf.client().Check(context.Background(), ref)
	return p.decide(conf, "check pod "+ref.String(), err)
}

// del never fails: the node proxy may be gone, and CNI requires DEL to
// succeed. A pod the node proxy misses here is cleaned up when it notices
// the namespace is gone.
func (p *plugin) del(args *skel.CmdArgs) error {
	conf, err := parseConfig(args.StdinData)
	if err != nil {
		fmt.Fprintf(p.stderr, "weft-cni: DEL: %v; using defaults\n", err)
		conf = &Config{}
	}
	ref, ok, err := podRef(args.Args)
	if err != nil {
		fmt.Fprintf(p.stderr, "weft-cni: DEL: %v\n", err)
		return nil
	}
	if !ok {
		return nil
	}
	if err := conf.client().Remove(context.Background(), ref); err != nil {
		fmt.Fprintf(p.stderr, "weft-cni: DEL: remove pod %s: %v (ignored)\n", ref, err)
	}
	return nil
}

// decide applies the fail-closed rule of the package doc to the outcome of
// an ADD or CHECK request.
func (p *plugin) decide(conf *Config, what string, err error) error {
	var unreachable *enroll.UnreachableError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unreachable) && conf.FailOpen:
		fmt.Fprintf(p.stderr, "weft-cni: WARNING: %s: %v; continuing unmeshed because failOpen is true\n", what, err)
		return nil
	case errors.As(err, &unreachable):
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("%s: %v; refusing to start the pod unmeshed (failOpen is false)", what, err), "")
	default: // a refusal (*enroll.RejectedError) or a local failure
		return types.NewError(types.ErrInternal, fmt.Sprintf("%s: %v", what, err), "")
	}
}

// printPrevResult prints the previous plugin's result in the config's
// version, or an empty result if there is none.
func (p *plugin) printPrevResult(conf *Config) error {
	res := conf.PrevResult
	if res == nil {
		res = &types100.Result{CNIVersion: types100.ImplementedSpecVersion}
	}
	out, err := res.GetAsVersion(conf.CNIVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("convert prevResult to %s: %v", conf.CNIVersion, err), "")
	}
	if err := out.PrintTo(p.stdout); err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	return nil
}
