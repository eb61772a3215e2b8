package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/node-proxy/netns"
)

// Handler is the node proxy's side of enrollment. Its methods are called
// concurrently, one call per request, and the reply is sent when the call
// returns. An error is sent to the client as the reply's error text, except
// [ErrNotMeshed] (or an error wrapping it), which is an ok reply with
// enrolled=false.
type Handler interface {
	// Add enrolls pod: it returns once the pod's capture rules and
	// listeners are in place. pod.NetNS is never nil. On a nil return Add
	// keeps pod.NetNS and must Close it later (on Remove); on any error,
	// ErrNotMeshed included, the server closes it.
	Add(ctx context.Context, pod Pod) error
	// Remove forgets the pod and closes its namespace. A pod that is not
	// known is not an error.
	Remove(ctx context.Context, ref PodRef) error
	// Check returns nil if the pod is enrolled, ErrNotMeshed if it is not
	// part of the mesh, and another error if it should be enrolled but is
	// not (or cannot tell).
	Check(ctx context.Context, ref PodRef) error
}

// Timeouts of the server side of one exchange.
const (
	requestTimeout = 10 * time.Second // to receive the request after accepting
	replyTimeout   = 5 * time.Second  // to send the reply after the Handler returns
	maxFDs         = 4                // descriptors received per packet; more truncates the control message
)

// Listen removes a stale socket file at path, creates its directory (0755)
// and listens there with mode 0600.
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("enroll listen %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("enroll listen %s: remove stale socket: %w", path, err)
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("enroll listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("enroll listen %s: %w", path, err)
	}
	return ln, nil
}

// Serve accepts enrollment connections on ln and answers them with h until
// ctx ends; it then closes ln, waits for the exchanges in progress and
// returns nil. ln must be a "unixpacket" listener (see [Listen]). A
// non-temporary accept error other than ln being closed is returned.
func Serve(ctx context.Context, ln *net.UnixListener, h Handler) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of descriptors and the like: pause, retry.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(ctx, conn, h)
		}()
	}
}

// serveConn handles the one exchange on conn and closes it.
func serveConn(ctx context.Context, conn *net.UnixConn, h Handler) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(requestTimeout))
	buf := make([]byte, MaxMessageSize+1)
	oob := make([]byte, unix.CmsgSpace(maxFDs*4))
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	fds := parseRights(oob[:oobn])
	if err != nil {
		closeFDs(fds)
		return // nobody to answer
	}
	rep := handle(ctx, h, buf[:n], flags, fds)
	b, err := json.Marshal(rep)
	if err != nil { // cannot happen: plain strings and bools
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(replyTimeout))
	_, _ = conn.Write(b)
}

// handle decodes one request and runs it. It closes every descriptor in fds
// it does not hand to h.
func handle(ctx context.Context, h Handler, msg []byte, flags int, fds []int) (rep reply) {
	defer func() {
		if p := recover(); p != nil {
			rep = reply{Error: fmt.Sprintf("internal error: %v", p)}
		}
	}()
	switch {
	case flags&unix.MSG_TRUNC != 0 || len(msg) > MaxMessageSize:
		closeFDs(fds)
		return reply{Error: fmt.Sprintf("request exceeds %d bytes", MaxMessageSize)}
	case flags&unix.MSG_CTRUNC != 0:
		closeFDs(fds)
		return reply{Error: "request carries too many file descriptors"}
	}
	req, err := decodeRequest(msg)
	if err != nil {
		closeFDs(fds)
		return reply{Error: err.Error()}
	}
	ref := req.Pod.Ref()
	if req.Op != OpAdd {
		if len(fds) > 0 {
			closeFDs(fds)
			return reply{Error: fmt.Sprintf("op %s takes no file descriptor, got %d", req.Op, len(fds))}
		}
		if req.Op == OpDel {
			if err := h.Remove(ctx, ref); err != nil {
				return reply{Error: fmt.Sprintf("remove pod %s: %v", ref, err)}
			}
			return reply{OK: true}
		}
		return result(h.Check(ctx, ref), "check", ref)
	}
	if len(fds) != 1 {
		closeFDs(fds)
		return reply{Error: fmt.Sprintf("op add needs exactly one network namespace descriptor, got %d", len(fds))}
	}
	ns, err := netns.FromFD(fds[0])
	if err != nil {
		closeFDs(fds)
		return reply{Error: fmt.Sprintf("add pod %s: %v", ref, err)}
	}
	pod := *req.Pod
	pod.NetNS = ns
	err = h.Add(ctx, pod)
	if err != nil {
		ns.Close()
	}
	return result(err, "add", ref)
}

// result turns a Handler's Add or Check error into a reply.
func result(err error, op string, ref PodRef) reply {
	switch {
	case err == nil:
		return reply{OK: true, Enrolled: true}
	case errors.Is(err, ErrNotMeshed):
		return reply{OK: true}
	default:
		return reply{Error: fmt.Sprintf("%s pod %s: %v", op, ref, err)}
	}
}

// parseRights returns the descriptors in the SCM_RIGHTS messages of oob.
func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fds = append(fds, got...)
	}
	return fds
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}
