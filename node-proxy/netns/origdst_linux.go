//go:build linux

package netns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from
// <linux/netfilter_ipv6/ip6_tables.h>, which golang.org/x/sys does not name.
const ip6tSOOriginalDst = 80

// OriginalDst returns the destination conn had before the kernel's NAT
// (here: our nftables redirect) rewrote it, read from conntrack with
// getsockopt SO_ORIGINAL_DST (IPv4, including IPv4 on a dual-stack socket)
// or IP6T_SO_ORIGINAL_DST (IPv6). For a connection that conntrack saw but
// did not rewrite it returns the connection's own local address; for one
// conntrack does not know it fails with an error wrapping ENOENT.
func OriginalDst(conn *net.TCPConn) (netip.AddrPort, error) {
	local, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok || local == nil {
		return netip.AddrPort{}, errors.New("original destination: connection has no local address")
	}
	ipv4 := local.AddrPort().Addr().Unmap().Is4()
	rc, err := conn.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	var dst netip.AddrPort
	var optErr error
	if err := rc.Control(func(fd uintptr) {
		if ipv4 {
			dst, optErr = originalDst4(int(fd))
		} else {
			dst, optErr = originalDst6(int(fd))
		}
	}); err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	if optErr != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination of %s: %w", local, optErr)
	}
	return dst, nil
}

func originalDst4(fd int) (netip.AddrPort, error) {
	var sa unix.RawSockaddrInet4
	if err := getsockopt(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST, unsafe.Pointer(&sa), unsafe.Sizeof(sa)); err != nil {
		return netip.AddrPort{}, os.NewSyscallError("getsockopt(SO_ORIGINAL_DST)", err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), networkPort(&sa.Port)), nil
}

func originalDst6(fd int) (netip.AddrPort, error) {
	var sa unix.RawSockaddrInet6
	if err := getsockopt(fd, unix.SOL_IPV6, ip6tSOOriginalDst, unsafe.Pointer(&sa), unsafe.Sizeof(sa)); err != nil {
		return netip.AddrPort{}, os.NewSyscallError("getsockopt(IP6T_SO_ORIGINAL_DST)", err)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), networkPort(&sa.Port)), nil
}

// networkPort reads a port stored in network byte order.
func networkPort(p *uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:])
}

// getsockopt reads a socket option of any size into p; x/sys/unix has no
// exported helper for arbitrary structures.
func getsockopt(fd, level, name int, p unsafe.Pointer, size uintptr) error {
	n := uint32(size)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name),
		uintptr(p), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
