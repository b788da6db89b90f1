// Package nfstest serves a directory over NFSv3 (MOUNT and NFS on one TCP
// port, no portmapper) with go-nfs, for tests of NFS volumes.
package nfstest

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	gonfs "github.com/willscott/go-nfs"
	"github.com/willscott/go-nfs/helpers"
)

// Serve serves dir on l until l is closed.
func Serve(l net.Listener, dir string) error {
	handler := helpers.NewCachingHandler(helpers.NewNullAuthHandler(changeFS{osfs.New(dir), dir}), 4096)
	err := gonfs.Serve(l, handler)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// changeFS adds billy.Change, which go-nfs needs for SETATTR, to osfs.
type changeFS struct {
	billy.Filesystem
	dir string
}

var _ billy.Change = changeFS{}

func (c changeFS) real(name string) string { return filepath.Join(c.dir, filepath.Clean("/"+name)) }

func (c changeFS) Chmod(name string, mode os.FileMode) error { return os.Chmod(c.real(name), mode) }

func (c changeFS) Lchown(name string, uid, gid int) error {
	return os.Lchown(c.real(name), uid, gid)
}

func (c changeFS) Chown(name string, uid, gid int) error { return os.Chown(c.real(name), uid, gid) }

func (c changeFS) Chtimes(name string, atime, mtime time.Time) error {
	return os.Chtimes(c.real(name), atime, mtime)
}
