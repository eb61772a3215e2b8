//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/node-proxy/netns"
)

const threadNS = "/proc/thread-self/ns/net"

// onThread runs fn on a new goroutine locked to its OS thread and waits for
// it. fn may change the thread's namespaces; when it reports that it did
// (dirty), or panics, the goroutine ends still locked and the runtime
// destroys the thread, so no other goroutine ever runs in those namespaces.
// fn never runs on the process's main thread.
func onThread(fn func() (dirty bool, err error)) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread: the runtime can never destroy it (a
			// goroutine that ends locked to it wedges it instead), so
			// it must not be tainted. A goroutine started now cannot
			// run on it, since it stays locked to this one.
			err := onThread(fn)
			runtime.UnlockOSThread()
			done <- err
			return
		}
		err := errors.New("sandbox: thread function panicked or exited")
		defer func() { done <- err }()
		var dirty bool
		dirty, err = fn()
		if !dirty {
			runtime.UnlockOSThread()
		}
	}()
	return <-done
}

// inNetNS runs fn with its thread in the network namespace at path, then
// puts the thread back (or retires it if that fails): netns.Do, the node
// proxy's own mechanism.
func inNetNS(path string, fn func() error) error {
	ns, err := netns.Open(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	return netns.Do(ns, fn)
}

// createNetNS creates an empty network namespace and bind-mounts it at
// RunDir/name, failing if that name exists.
func createNetNS(name string) error {
	path := nsPath(name)
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	f.Close()
	err = onThread(func() (bool, error) {
		// The thread is retired afterwards whatever happens: it is in
		// the new namespace.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return false, os.NewSyscallError("unshare(CLONE_NEWNET)", err)
		}
		return true, os.NewSyscallError("mount", unix.Mount(threadNS, path, "none", unix.MS_BIND, ""))
	})
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	return nil
}

// deleteNetNS unmounts and removes RunDir/name. A missing name is not an
// error. The namespace itself goes away once no process holds it.
func deleteNetNS(name string) error {
	path := nsPath(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("delete netns %s: %w", name, os.NewSyscallError("umount", err))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// ownedNamespaces lists the names under RunDir that a sandbox called name
// creates.
func ownedNamespaces(name string) ([]string, error) {
	entries, err := os.ReadDir(RunDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if ownedName(name, e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// nsInode returns the inode of the namespace at path, which identifies it.
func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// pidsInNetNS lists the processes whose network namespace has one of inodes.
func pidsInNetNS(inodes map[uint64]bool) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, p := range procs {
		var st unix.Stat_t
		if unix.Stat(p+"/ns/net", &st) != nil || !inodes[st.Ino] {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(p), "%d", &pid); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}
