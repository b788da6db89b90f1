// Package nfs mounts NFSv3 exports on the node. It asks the kernel first
// (mount -t nfs); a kernel without an NFS client (ENODEV) gets the export
// through FUSE instead: a detached helper process, `skiff nfs-fuse`, that
// speaks MOUNT and NFSv3 over TCP itself and serves the files through
// /dev/fuse. docs/adr/0007-nfs-volumes-over-fuse.md has the design.
package nfs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// HelperCommand is the subcommand of skiff that runs the FUSE helper.
const HelperCommand = "nfs-fuse"

// fuseSuperMagic is statfs's f_type of a FUSE mount.
const fuseSuperMagic = 0x65735546

// Mounter mounts NFS exports.
type Mounter struct {
	// Helper is the command line that runs HelperCommand, before its
	// flags (default: this executable and HelperCommand).
	Helper []string
	// ReadyTimeout bounds the wait for the helper's mount (default 10s).
	ReadyTimeout time.Duration
	// kernelMount is unix.Mount; tests replace it.
	kernelMount func(source, target, fstype string, flags uintptr, data string) error
}

// Mount mounts src at the existing directory target, through the kernel
// if it has an NFS client, otherwise through the FUSE helper. It returns
// once the mount is in place.
func (m *Mounter) Mount(ctx context.Context, src Source, target string) error {
	err := m.mountKernel(src, target)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENODEV) {
		return err
	}
	return m.mountFUSE(ctx, src, target)
}

func (m *Mounter) mountKernel(src Source, target string) error {
	addr, err := resolve(src.Server)
	if err != nil {
		return err
	}
	data := "nfsvers=3,proto=tcp,nolock,addr=" + addr + ",mountaddr=" + addr
	if src.Port != 0 {
		p := strconv.Itoa(src.Port)
		data += ",port=" + p + ",mountport=" + p + ",mountproto=tcp"
	}
	var flags uintptr
	if src.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	mount := m.kernelMount
	if mount == nil {
		mount = unix.Mount
	}
	if err := mount(src.Server+":"+src.Path, target, "nfs", flags, data); err != nil {
		return fmt.Errorf("mount -t nfs %s:%s at %s: %w", src.Server, src.Path, target, err)
	}
	return nil
}

func resolve(host string) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("resolve NFS server %s: %w", host, err)
	}
	return ips[0].String(), nil
}

// LogPath is the helper's log file for a mount at target: beside it, as
// the helper outlives the kubelet that started it.
func LogPath(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".nfs-fuse.log")
}

func (m *Mounter) mountFUSE(ctx context.Context, src Source, target string) error {
	before, err := devOf(target)
	if err != nil {
		return err
	}
	helper := m.Helper
	if len(helper) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the nfs-fuse helper: %w", err)
		}
		helper = []string{exe, HelperCommand}
	}
	args := append(helper[1:len(helper):len(helper)], "--server", src.Server, "--path", src.Path)
	if src.Port != 0 {
		args = append(args, "--port", strconv.Itoa(src.Port))
	}
	if src.ReadOnly {
		args = append(args, "--read-only")
	}
	args = append(args, target)
	logPath := LogPath(target)
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open nfs-fuse log: %w", err)
	}
	defer log.Close()
	// Not CommandContext: the helper serves the mount after ctx ends and
	// after the kubelet exits, in a session of its own.
	cmd := exec.Command(helper[0], args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nfs-fuse helper: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	timeout := m.ReadyTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if mounted(target, before) {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("nfs-fuse helper for %s:%s exited before mounting (%v); see %s", src.Server, src.Path, err, logPath)
		case <-deadline.C:
			_ = cmd.Process.Kill()
			_ = Unmount(target)
			return fmt.Errorf("nfs-fuse mount of %s:%s at %s not ready after %s; see %s", src.Server, src.Path, target, timeout, logPath)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			_ = Unmount(target)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// mounted reports whether a FUSE filesystem now answers at target.
func mounted(target string, before uint64) bool {
	dev, err := devOf(target)
	if err != nil || dev == before {
		return false
	}
	var st unix.Statfs_t
	return unix.Statfs(target, &st) == nil && st.Type == fuseSuperMagic
}

func devOf(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Dev, nil
}

// Unmount unmounts target, detaching it lazily if it is busy; a target
// that is not mounted is not an error. A FUSE helper exits on its own
// once its connection ends.
func Unmount(target string) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("unmount %s: %w", target, err)
}

// RunHelper is the body of `skiff nfs-fuse`: it mounts src at mountpoint
// through FUSE and serves it until the filesystem is unmounted, or until
// SIGTERM or SIGINT, which unmount it.
func RunHelper(src Source, mountpoint string) error {
	c, err := Dial(src)
	if err != nil {
		return err
	}
	defer c.Close()
	srv, err := MountFUSE(c, mountpoint, src.ReadOnly)
	if err != nil {
		return fmt.Errorf("fuse mount at %s: %w", mountpoint, err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	go func() {
		if _, ok := <-sig; ok {
			_ = srv.Unmount()
		}
	}()
	srv.Wait()
	return nil
}
