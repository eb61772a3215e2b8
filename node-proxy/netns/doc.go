// Package netns opens Linux network namespaces and creates sockets inside
// them for the node proxy. It is not internal so that the sandbox and the
// end-to-end tests (tests/) use the same mechanism instead of a copy.
//
// The node proxy runs in the node's network namespace but listens and dials
// inside each enrolled pod's namespace. A socket belongs to the namespace it
// was created in for its whole life, whatever thread later reads or writes it.
// So this package enters a pod's namespace only for the moment it takes to
// create a socket, and does everything else (accept, connect, read, write)
// from ordinary goroutines through the runtime's poller:
//
//   - [Do] runs a function on a fresh goroutine locked to its OS thread,
//     switches that thread into the namespace with setns(2), runs the
//     function, switches back, and only then unlocks the thread. If switching
//     back fails, the goroutine exits still locked and the Go runtime destroys
//     the thread, so no goroutine ever runs in a namespace it did not ask for.
//     The caller's own goroutine and thread never change namespace.
//   - [Listen] creates a listening socket in a namespace; Accept is called
//     from any goroutine.
//   - [Dialer] creates a socket in a namespace (or in the caller's), sets
//     SO_MARK on it so that the pod's capture rules let it through, and
//     connects it without holding a thread in the namespace while the
//     handshake runs.
//   - [OriginalDst] reads the destination a redirected connection had before
//     nftables rewrote it (SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST).
//
// Only literal IP addresses are accepted: no name resolution ever happens
// inside a pod's namespace (it would use the node's resolver configuration
// and could start helper goroutines outside the namespace).
//
// Everything here needs Linux; on other systems the functions return
// [errors.ErrUnsupported]. Entering another namespace needs CAP_SYS_ADMIN and
// setting a socket mark needs CAP_NET_ADMIN.
package netns
