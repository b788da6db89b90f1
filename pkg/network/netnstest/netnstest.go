// Package netnstest gives tests network namespaces of their own, so that
// links, routes, nftables tables and conntrack entries they make never
// touch the machine's. Tests using it need root.
package netnstest

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// New returns a fresh network namespace, gone (with everything in it)
// when the test ends: the thread that made it dies with its goroutine and
// the handle, closed at clean-up, is the last reference.
func New(t testing.TB) netns.NsHandle {
	t.Helper()
	var h netns.NsHandle
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		var err error
		h, err = netns.Get()
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Do runs f on a locked thread inside ns (processes f starts, such as nft,
// start there too) and stops the test if f reported a failure. f must
// report with t.Error, not t.Fatal: it runs on another goroutine.
func Do(t testing.TB, ns netns.NsHandle, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			t.Error(err)
			return
		}
		f()
		// Back in the original namespace the thread may serve others;
		// if that fails it stays locked and exits with the goroutine.
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	if t.Failed() {
		t.FailNow()
	}
}
