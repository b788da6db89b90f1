package framework

import (
	"net"
	"strconv"
	"testing"

	"github.com/skiff/skiff/pkg/volume/nfs"
	"github.com/skiff/skiff/pkg/volume/nfs/nfstest"
)

// StartNFSServer serves dir over NFSv3 on 127.0.0.1 at the NFS port (2049),
// where a volume's `server: 127.0.0.1` finds it, until the test ends.
func StartNFSServer(t testing.TB, dir string) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(nfs.DefaultPort)))
	if err != nil {
		t.Fatalf("listen for NFS on 127.0.0.1:%d: %v", nfs.DefaultPort, err)
	}
	done := make(chan error, 1)
	go func() { done <- nfstest.Serve(l, dir) }()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil {
			t.Errorf("NFS server: %v", err)
		}
	})
}
