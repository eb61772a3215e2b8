package tunnel

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
)

// StatusError is returned by Client.Dial when the server answers the
// CONNECT with a status other than 200. Callers map it with errors.As; see
// the package documentation for what each status means.
type StatusError struct {
	Code int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("tunnel: CONNECT refused: %d %s", e.Code, http.StatusText(e.Code))
}

// StatusCode returns the HTTP status carried by err (a *StatusError
// anywhere in its chain) and whether there was one.
func StatusCode(err error) (int, bool) {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code, true
	}
	return 0, false
}

// ResetError is returned by stream operations after the stream was reset
// with RST_STREAM, by the peer (Remote) or locally.
type ResetError struct {
	Code   http2.ErrCode
	Remote bool
}

func (e *ResetError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	return fmt.Sprintf("tunnel: stream reset %s: %v", who, e.Code)
}

// ConnError is returned by stream operations and Dial when the TLS
// connection carrying the stream failed or was closed. Err is the cause.
type ConnError struct {
	Err error
}

func (e *ConnError) Error() string { return "tunnel: connection closed: " + e.Err.Error() }
func (e *ConnError) Unwrap() error { return e.Err }

// IdentityError is returned by Client.Dial when the server proved an
// identity other than the expected destination.
type IdentityError struct {
	Want, Got spiffeid.ID
}

func (e *IdentityError) Error() string {
	return fmt.Sprintf("tunnel: server is %s, want %s", e.Got, e.Want)
}

// Errors an Authorize callback returns (wrapped or not) to choose the
// answer: ErrUnauthenticated becomes 401, any other error 403.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrDenied          = errors.New("denied by authorization policy")
)

// ErrClosed is the cause inside ConnError after Client.Close or
// Server.Close, and what Serve returns after Close or Shutdown.
var ErrClosed = errors.New("tunnel: closed")

// Causes of connection teardown, wrapped in ConnError.
var (
	errIdle             = errors.New("idle timeout")
	errKeepAliveTimeout = errors.New("no answer to keepalive PING")
	errGoingAway        = errors.New("peer sent GOAWAY")
	errStreamClosed     = errors.New("tunnel: stream closed")
)

// retryable marks an error on a stream the server never processed (refused
// with REFUSED_STREAM, above a GOAWAY's last stream ID, or never sent),
// so Dial may try again on another connection.
type retryable struct{ err error }

func (e *retryable) Error() string { return e.err.Error() }
func (e *retryable) Unwrap() error { return e.err }

func isRetryable(err error) bool {
	var r *retryable
	return errors.As(err, &r)
}
