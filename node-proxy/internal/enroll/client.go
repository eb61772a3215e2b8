package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/node-proxy/netns"
)

// DefaultTimeout bounds one exchange when [Client.Timeout] is zero.
const DefaultTimeout = 10 * time.Second

// Client sends enrollment requests to the node proxy. The zero Client uses
// [DefaultSocketPath] and [DefaultTimeout]. A Client is safe for concurrent
// use; each call is one connection.
type Client struct {
	// SocketPath is the node proxy's enrollment socket. Empty means
	// DefaultSocketPath.
	SocketPath string
	// Timeout bounds each call, from connecting to reading the reply, on
	// top of the context's deadline. Zero means DefaultTimeout.
	Timeout time.Duration
}

// UnreachableError reports that no reply came from the node proxy: the
// socket is missing, nobody listens, or the connection failed or timed out
// before a reply. The node proxy may or may not have acted on the request.
type UnreachableError struct {
	SocketPath string
	Err        error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("node proxy unreachable at %s: %v", e.SocketPath, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// RejectedError is the node proxy's refusal: a reply with ok=false.
type RejectedError struct {
	Msg string // the reply's error text
}

func (e *RejectedError) Error() string { return "node proxy refused: " + e.Msg }

// Add enrolls pod and reports whether the node proxy enrolled it (false: the
// pod is not part of the mesh). The namespace sent is pod.NetNS if set
// (it stays owned by the caller), else pod.NetNSPath opened with netns.Open.
// Errors are *UnreachableError, *RejectedError, or a local failure to open
// the namespace or to build the request.
func (c *Client) Add(ctx context.Context, pod Pod) (enrolled bool, err error) {
	ns := pod.NetNS
	if ns == nil {
		if pod.NetNSPath == "" {
			return false, fmt.Errorf("enroll pod %s: no network namespace given", pod.Ref())
		}
		ns, err = netns.Open(pod.NetNSPath)
		if err != nil {
			return false, fmt.Errorf("enroll pod %s: %w", pod.Ref(), err)
		}
		defer ns.Close()
	}
	p := pod
	p.NetNS = nil
	var rep reply
	err = ns.WithFd(func(fd int) error {
		var err error
		rep, err = c.exchange(ctx, request{Version: protocolVersion, Op: OpAdd, Pod: &p}, fd)
		return err
	})
	if err != nil {
		return false, err
	}
	return rep.Enrolled, nil
}

// Remove tells the node proxy the pod is gone. Errors are as for Add.
func (c *Client) Remove(ctx context.Context, ref PodRef) error {
	p := Pod{UID: ref.UID, Namespace: ref.Namespace, Name: ref.Name}
	_, err := c.exchange(ctx, request{Version: protocolVersion, Op: OpDel, Pod: &p}, -1)
	return err
}

// Check asks whether the pod is enrolled: true if it is, false if it is not
// part of the mesh, a *RejectedError if it should be enrolled and is not.
func (c *Client) Check(ctx context.Context, ref PodRef) (enrolled bool, err error) {
	p := Pod{UID: ref.UID, Namespace: ref.Namespace, Name: ref.Name}
	rep, err := c.exchange(ctx, request{Version: protocolVersion, Op: OpCheck, Pod: &p}, -1)
	return rep.Enrolled, err
}

// exchange sends req, with fd as SCM_RIGHTS if fd >= 0, and reads the reply.
// It returns an error for ok=false.
func (c *Client) exchange(ctx context.Context, req request, fd int) (reply, error) {
	if err := validatePod(*req.Pod); err != nil {
		return reply{}, fmt.Errorf("enroll %s: %w", req.Op, err)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return reply{}, fmt.Errorf("enroll %s: %w", req.Op, err)
	}
	if len(b) > MaxMessageSize {
		return reply{}, fmt.Errorf("enroll %s: request of %d bytes exceeds %d", req.Op, len(b), MaxMessageSize)
	}
	path := c.SocketPath
	if path == "" {
		path = DefaultSocketPath
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	unreachable := func(err error) (reply, error) {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return reply{}, &UnreachableError{SocketPath: path, Err: err}
	}

	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		return unreachable(err)
	}
	conn := nc.(*net.UnixConn)
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if _, _, err := conn.WriteMsgUnix(b, oob, nil); err != nil {
		return unreachable(err)
	}
	buf := make([]byte, MaxMessageSize+1)
	n, err := conn.Read(buf)
	if err != nil {
		return unreachable(fmt.Errorf("waiting for the reply: %w", err))
	}
	if n == 0 {
		return unreachable(errors.New("connection closed without a reply"))
	}
	rep, err := decodeReply(buf[:n])
	if err != nil {
		return unreachable(err)
	}
	if !rep.OK {
		return rep, &RejectedError{Msg: rep.Error}
	}
	return rep, nil
}
