package nfs

import (
	"context"
	"errors"
	"io"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	nfsc "github.com/willscott/go-nfs-client/nfs"
)

// cacheTimeout is how long the kernel trusts entries and attributes; NFS
// is shared, so it is short, as the kernel client's actimeo defaults are.
const cacheTimeout = time.Second

// MountFUSE serves the NFS export behind c as a FUSE filesystem at
// mountpoint. The returned server's Wait returns once the filesystem is
// unmounted.
func MountFUSE(c *Client, mountpoint string, readOnly bool) (*fuse.Server, error) {
	r := &root{c: c}
	timeout := cacheTimeout
	opts := &fs.Options{
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		MountOptions: fuse.MountOptions{
			FsName:      "nfs",
			Name:        "nfs",
			AllowOther:  true,
			DirectMount: true,
			// The server sees uid 0: let the kernel check mode bits
			// against the calling process instead.
			Options:      []string{"default_permissions"},
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
		},
	}
	if readOnly {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
	}
	r.node.root = r
	return fs.Mount(mountpoint, &r.node, opts)
}

// root is the state every node shares.
type root struct {
	c    *Client
	node node
}

// node is a file, directory or symlink of the export, named by its path:
// the client's API is path based and go-fuse keeps paths current across
// renames.
type node struct {
	fs.Inode
	root *root
}

var (
	_ fs.NodeLookuper   = (*node)(nil)
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeSetattrer  = (*node)(nil)
	_ fs.NodeReaddirer  = (*node)(nil)
	_ fs.NodeOpener     = (*node)(nil)
	_ fs.NodeCreater    = (*node)(nil)
	_ fs.NodeMkdirer    = (*node)(nil)
	_ fs.NodeUnlinker   = (*node)(nil)
	_ fs.NodeRmdirer    = (*node)(nil)
	_ fs.NodeRenamer    = (*node)(nil)
	_ fs.NodeSymlinker  = (*node)(nil)
	_ fs.NodeReadlinker = (*node)(nil)
	_ fs.NodeStatfser   = (*node)(nil)
)

func (n *node) path() string { return n.Path(n.Root()) }

func (n *node) child(name string) string { return path.Join(n.path(), name) }

// attr reads the attributes of p from the server.
func (n *node) attr(p string) (*nfsc.Fattr, []byte, syscall.Errno) {
	fi, fh, err := n.root.c.Lookup(p)
	if err != nil {
		return nil, nil, errno(err)
	}
	fa, ok := fi.(*nfsc.Fattr)
	if !ok {
		return nil, nil, syscall.EIO
	}
	return fa, fh, 0
}

// newChild makes the inode for name from its attributes.
func (n *node) newChild(ctx context.Context, fa *nfsc.Fattr, out *fuse.EntryOut) *fs.Inode {
	fill(&out.Attr, fa)
	return n.NewInode(ctx, &node{root: n.root}, fs.StableAttr{Mode: fileType(fa.Type), Ino: fa.Fileid})
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	fa, _, e := n.attr(n.child(name))
	if e != 0 {
		return nil, e
	}
	return n.newChild(ctx, fa, out), 0
}

func (n *node) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fa, _, e := n.attr(n.path())
	if e != 0 {
		return e
	}
	fill(&out.Attr, fa)
	return 0
}

func (n *node) Setattr(_ context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	_, fh, e := n.attr(n.path())
	if e != 0 {
		return e
	}
	var s nfsc.Sattr3
	if m, ok := in.GetMode(); ok {
		s.Mode = nfsc.SetMode{SetIt: true, Mode: m & 0o7777}
	}
	if u, ok := in.GetUID(); ok {
		s.UID = nfsc.SetUID{SetIt: true, UID: u}
	}
	if g, ok := in.GetGID(); ok {
		s.GID = nfsc.SetUID{SetIt: true, UID: g}
	}
	if sz, ok := in.GetSize(); ok {
		s.Size = nfsc.SetSize{SetIt: true, Size: sz}
	}
	if t, ok := in.GetATime(); ok {
		s.Atime = nfsc.SetTime{SetIt: nfsc.SetToClientTime, Time: nfsTime(t)}
	}
	if t, ok := in.GetMTime(); ok {
		s.Mtime = nfsc.SetTime{SetIt: nfsc.SetToClientTime, Time: nfsTime(t)}
	}
	fa, err := n.root.c.SetAttr(fh, s)
	if err != nil {
		return errno(err)
	}
	fill(&out.Attr, fa)
	return 0
}

func (n *node) Readdir(context.Context) (fs.DirStream, syscall.Errno) {
	es, err := n.root.c.ReadDirPlus(n.path())
	if err != nil {
		return nil, errno(err)
	}
	list := make([]fuse.DirEntry, 0, len(es))
	for _, e := range es {
		de := fuse.DirEntry{Name: e.FileName, Ino: e.FileId}
		if e.Attr.IsSet {
			de.Mode = fileType(e.Attr.Attr.Type)
		}
		list = append(list, de)
	}
	return fs.NewListDirStream(list), 0
}

func (n *node) Open(_ context.Context, _ uint32) (fs.FileHandle, uint32, syscall.Errno) {
	f, err := n.root.c.Open(n.path())
	if err != nil {
		return nil, 0, errno(err)
	}
	return &handle{f: f}, 0, 0
}

func (n *node) Create(ctx context.Context, name string, _ uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	p := n.child(name)
	if _, err := n.root.c.Create(p, os.FileMode(mode&0o777)); err != nil {
		return nil, nil, 0, errno(err)
	}
	fa, _, e := n.attr(p)
	if e != 0 {
		return nil, nil, 0, e
	}
	f, err := n.root.c.Open(p)
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	return n.newChild(ctx, fa, out), &handle{f: f}, 0, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	p := n.child(name)
	if _, err := n.root.c.Mkdir(p, os.FileMode(mode&0o777)); err != nil {
		return nil, errno(err)
	}
	fa, _, e := n.attr(p)
	if e != 0 {
		return nil, e
	}
	return n.newChild(ctx, fa, out), 0
}

func (n *node) Unlink(_ context.Context, name string) syscall.Errno {
	return errno(n.root.c.Remove(n.child(name)))
}

func (n *node) Rmdir(_ context.Context, name string) syscall.Errno {
	return errno(n.root.c.RmDir(n.child(name)))
}

func (n *node) Rename(_ context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags != 0 {
		// NFSv3 has no RENAME_NOREPLACE or RENAME_EXCHANGE; callers
		// fall back to plain rename on EINVAL.
		return syscall.EINVAL
	}
	to := path.Join(newParent.EmbeddedInode().Path(n.Root()), newName)
	return errno(n.root.c.Rename(n.child(name), to))
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	p := n.child(name)
	if err := n.root.c.Symlink(target, p); err != nil {
		return nil, errno(err)
	}
	fa, _, e := n.attr(p)
	if e != 0 {
		return nil, e
	}
	return n.newChild(ctx, fa, out), 0
}

func (n *node) Readlink(context.Context) ([]byte, syscall.Errno) {
	f, err := n.root.c.Open(n.path())
	if err != nil {
		return nil, errno(err)
	}
	s, err := f.Readlink()
	if err != nil {
		return nil, errno(err)
	}
	return []byte(s), 0
}

// Statfs reports a large, empty filesystem: the client has no FSSTAT,
// and statfs must succeed for the kubelet and df.
func (n *node) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	const blocks = 1 << 30
	out.Bsize, out.Frsize = 4096, 4096
	out.Blocks, out.Bfree, out.Bavail = blocks, blocks, blocks
	out.Files, out.Ffree = 1<<20, 1<<20
	out.NameLen = 255
	return 0
}

// handle is an open file. The client's File keeps a position, so one
// lock orders seeks with the I/O that follows them.
type handle struct {
	mu sync.Mutex
	f  *nfsc.File
}

var (
	_ fs.FileReader = (*handle)(nil)
	_ fs.FileWriter = (*handle)(nil)
)

func (h *handle) Read(_ context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for n < len(dest) {
		m, err := h.f.ReadAt(dest[n:], off+int64(n))
		n += m
		if errors.Is(err, io.EOF) || (err == nil && m == 0) {
			break
		}
		if err != nil {
			return nil, errno(err)
		}
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(_ context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.f.Seek(off, io.SeekStart); err != nil {
		return 0, errno(err)
	}
	n, err := h.f.Write(data)
	if err != nil {
		return uint32(n), errno(err)
	}
	return uint32(n), 0
}

// fill copies NFS attributes to FUSE ones.
func fill(a *fuse.Attr, fa *nfsc.Fattr) {
	a.Ino = fa.Fileid
	a.Mode = fileType(fa.Type) | fa.FileMode&0o7777
	a.Nlink = fa.Nlink
	a.Owner = fuse.Owner{Uid: fa.UID, Gid: fa.GID}
	a.Size = fa.Filesize
	a.Blocks = (fa.Used + 511) / 512
	a.Blksize = 4096
	a.Atime, a.Atimensec = uint64(fa.Atime.Seconds), fa.Atime.Nseconds
	a.Mtime, a.Mtimensec = uint64(fa.Mtime.Seconds), fa.Mtime.Nseconds
	a.Ctime, a.Ctimensec = uint64(fa.Ctime.Seconds), fa.Ctime.Nseconds
}

func fileType(t uint32) uint32 {
	switch t {
	case nfsc.NF3Dir:
		return syscall.S_IFDIR
	case nfsc.NF3Lnk:
		return syscall.S_IFLNK
	case nfsc.NF3Blk:
		return syscall.S_IFBLK
	case nfsc.NF3Chr:
		return syscall.S_IFCHR
	case nfsc.NF3Sock:
		return syscall.S_IFSOCK
	case nfsc.NF3FIFO:
		return syscall.S_IFIFO
	default:
		return syscall.S_IFREG
	}
}

func nfsTime(t time.Time) nfsc.NFS3Time {
	return nfsc.NFS3Time{Seconds: uint32(t.Unix()), Nseconds: uint32(t.Nanosecond())}
}

// nfsErrnos maps NFSv3 status codes the client does not translate; the
// first ones share their numbers with Linux errno values.
var nfsErrnos = map[uint32]syscall.Errno{
	5: syscall.EIO, 6: syscall.ENXIO, 13: syscall.EACCES, 18: syscall.EXDEV,
	19: syscall.ENODEV, 20: syscall.ENOTDIR, 21: syscall.EISDIR, 22: syscall.EINVAL,
	27: syscall.EFBIG, 28: syscall.ENOSPC, 30: syscall.EROFS, 31: syscall.EMLINK,
	63: syscall.ENAMETOOLONG, 66: syscall.ENOTEMPTY, 69: syscall.EDQUOT,
	70: syscall.ESTALE, 10001: syscall.EBADF, 10004: syscall.ENOTSUP,
	10005: syscall.EINVAL, 10007: syscall.EINVAL,
}

// errno turns a client error into the errno the kernel returns.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var ne *nfsc.Error
	switch {
	case errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, os.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, os.ErrPermission):
		return syscall.EPERM
	case errors.As(err, &ne):
		if e, ok := nfsErrnos[ne.ErrorNum]; ok {
			return e
		}
	}
	return syscall.EIO
}
