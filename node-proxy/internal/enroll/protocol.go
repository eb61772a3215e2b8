package enroll

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/weftmesh/weft/node-proxy/netns"
)

// DefaultSocketPath is where the node proxy listens for enrollment requests.
const DefaultSocketPath = "/var/run/weft/node-proxy.sock"

// MaxMessageSize is the largest request or reply packet, in bytes.
const MaxMessageSize = 16 << 10

// protocolVersion is the only request version understood.
const protocolVersion = 1

// Field limits for a request.
const (
	maxUIDLen  = 128
	maxNameLen = 253
	maxPathLen = 4096
)

// Op is a request's operation.
type Op string

// The operations.
const (
	OpAdd   Op = "add"
	OpDel   Op = "del"
	OpCheck Op = "check"
)

// ErrNotMeshed is returned by a [Handler] for a pod that is not part of the
// mesh: Add then succeeds without enrolling it, and Check reports it as not
// enrolled, which is not a failure.
var ErrNotMeshed = errors.New("pod is not part of the mesh")

// PodRef names a pod.
type PodRef struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (r PodRef) String() string { return r.Namespace + "/" + r.Name + " (" + r.UID + ")" }

// Pod is a pod announced for enrollment.
type Pod struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// NetNSPath is where the pod's netns is mounted, for re-adoption after
	// a restart. Empty means unknown.
	NetNSPath string `json:"netnsPath,omitempty"`
	// NetNS is the pod's network namespace. Not sent as JSON: it travels as
	// a descriptor.
	NetNS *netns.NS `json:"-"`
}

// Ref returns the pod's name.
func (p Pod) Ref() PodRef { return PodRef{UID: p.UID, Namespace: p.Namespace, Name: p.Name} }

// request is a request packet.
type request struct {
	Version int  `json:"version"`
	Op      Op   `json:"op"`
	Pod     *Pod `json:"pod"`
}

// reply is a reply packet.
type reply struct {
	OK       bool   `json:"ok"`
	Enrolled bool   `json:"enrolled,omitempty"`
	Error    string `json:"error,omitempty"`
}

// decodeRequest parses and validates one request packet.
func decodeRequest(b []byte) (request, error) {
	if len(b) > MaxMessageSize {
		return request{}, fmt.Errorf("request of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	var req request
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&req); err != nil {
		return request{}, fmt.Errorf("malformed request: %w", err)
	}
	if dec.More() {
		return request{}, errors.New("malformed request: data after the JSON object")
	}
	if req.Version != protocolVersion {
		return request{}, fmt.Errorf("unsupported protocol version %d (want %d)", req.Version, protocolVersion)
	}
	switch req.Op {
	case OpAdd, OpDel, OpCheck:
	default:
		return request{}, fmt.Errorf("unknown op %q", req.Op)
	}
	if req.Pod == nil {
		return request{}, errors.New("request has no pod")
	}
	if err := validatePod(*req.Pod); err != nil {
		return request{}, err
	}
	if req.Op != OpAdd && req.Pod.NetNSPath != "" {
		return request{}, fmt.Errorf("op %s takes no netnsPath", req.Op)
	}
	return req, nil
}

// validatePod checks the fields of p (not NetNS).
func validatePod(p Pod) error {
	if err := ValidUID(p.UID); err != nil {
		return err
	}
	if p.Namespace == "" || len(p.Namespace) > maxNameLen {
		return fmt.Errorf("pod %s: namespace must be 1-%d bytes", p.UID, maxNameLen)
	}
	if p.Name == "" || len(p.Name) > maxNameLen {
		return fmt.Errorf("pod %s: name must be 1-%d bytes", p.UID, maxNameLen)
	}
	if p.NetNSPath != "" {
		if len(p.NetNSPath) > maxPathLen || !filepath.IsAbs(p.NetNSPath) || strings.ContainsRune(p.NetNSPath, 0) {
			return fmt.Errorf("pod %s: netnsPath must be an absolute path of at most %d bytes", p.UID, maxPathLen)
		}
	}
	return nil
}

// ValidUID fails unless uid is usable as a pod key and file name: 1-128
// bytes of [A-Za-z0-9._-], not starting with '.'. Kubernetes UIDs (UUIDs)
// always are.
func ValidUID(uid string) error {
	if uid == "" || len(uid) > maxUIDLen || uid[0] == '.' {
		return fmt.Errorf("pod uid %q: want 1-%d bytes of [A-Za-z0-9._-], not starting with '.'", uid, maxUIDLen)
	}
	for i := 0; i < len(uid); i++ {
		c := uid[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("pod uid %q: want 1-%d bytes of [A-Za-z0-9._-], not starting with '.'", uid, maxUIDLen)
		}
	}
	return nil
}

// decodeReply parses one reply packet.
func decodeReply(b []byte) (reply, error) {
	var rep reply
	if len(b) == 0 {
		return rep, errors.New("empty reply")
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("malformed reply: %w", err)
	}
	return rep, nil
}
