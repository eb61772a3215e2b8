//go:build linux

package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/node-proxy/netns"
)

// capture records the frames crossing one interface of one network
// namespace, with a raw AF_PACKET socket (what tcpdump uses), so a test can
// look at exactly what went over the wire.
type capture struct {
	fd int

	mu       sync.Mutex // guards segments
	segments []segment
	done     chan struct{}
}

// segment is one captured TCP segment with a payload.
type segment struct {
	src, dst net.IP
	sport    uint16
	dport    uint16
	payload  []byte
}

// startCapture opens a capture on iface inside the namespace at netnsPath.
func startCapture(netnsPath, iface string) (*capture, error) {
	ns, err := netns.Open(netnsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	fd := -1
	proto := htons(unix.ETH_P_ALL)
	err = netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto)); err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind packet socket to %s: %w", iface, err)
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, err
	}
	c := &capture{fd: fd, done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *capture) read() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			return
		}
		if s, ok := parseTCP(buf[:n]); ok {
			c.mu.Lock()
			c.segments = append(c.segments, s)
			c.mu.Unlock()
		}
	}
}

// stop ends the capture and returns the TCP segments with a payload.
func (c *capture) stop() []segment {
	_ = unix.Shutdown(c.fd, unix.SHUT_RDWR)
	unix.Close(c.fd)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.segments
}

// parseTCP decodes an Ethernet frame carrying IPv4 and TCP with a payload.
func parseTCP(f []byte) (segment, bool) {
	if len(f) < 14 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_IP {
		return segment{}, false
	}
	ip := f[14:]
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != unix.IPPROTO_TCP {
		return segment{}, false
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if total > len(ip) || ihl < 20 || total < ihl+20 {
		return segment{}, false
	}
	tcp := ip[ihl:total]
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) || off == len(tcp) {
		return segment{}, false
	}
	return segment{
		src: net.IP(append([]byte(nil), ip[12:16]...)), dst: net.IP(append([]byte(nil), ip[16:20]...)),
		sport: binary.BigEndian.Uint16(tcp[0:2]), dport: binary.BigEndian.Uint16(tcp[2:4]),
		payload: append([]byte(nil), tcp[off:]...),
	}, true
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
