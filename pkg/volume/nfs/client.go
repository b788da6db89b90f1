package nfs

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

// DefaultPort is the port the client uses for both MOUNT and NFS when
// no portmapper answers: go-nfs, and most modern servers, serve both
// programs on it.
const DefaultPort = 2049

// portmapperTimeout bounds the probe of the server's portmapper.
const portmapperTimeout = 300 * time.Millisecond

// Source is an NFS export.
type Source struct {
	// Server is the server's host name or IP address.
	Server string
	// Path is the exported path.
	Path string
	// Port, when set, is the port of both the MOUNT and NFS programs and
	// the portmapper is not asked.
	Port int
	// ReadOnly mounts the export read-only.
	ReadOnly bool
}

// Client is a mounted NFSv3 export.
type Client struct {
	*nfsc.Target
	mount *nfsc.Mount
}

// Dial mounts src with the MOUNT protocol and returns a client of its
// NFSv3 service, authenticating as AUTH_UNIX uid 0. Without src.Port the
// portmapper (port 111) is tried briefly; if it does not answer, both
// programs are dialed at DefaultPort.
func Dial(src Source) (*Client, error) {
	auth := rpc.NewAuthUnix(hostname(), 0, 0).Auth()
	var m *nfsc.Mount
	if src.Port == 0 && portmapperAnswers(src.Server) {
		var err error
		if m, err = nfsc.DialMount(src.Server, 0); err != nil {
			return nil, fmt.Errorf("dial MOUNT on %s: %w", src.Server, err)
		}
	} else {
		port := src.Port
		if port == 0 {
			port = DefaultPort
		}
		c, err := rpc.DialTCP("tcp", net.JoinHostPort(src.Server, strconv.Itoa(port)), os.Geteuid() == 0)
		if err != nil {
			return nil, fmt.Errorf("dial %s:%d: %w", src.Server, port, err)
		}
		// An empty Addr makes the target share the MOUNT connection.
		m = &nfsc.Mount{Client: c}
	}
	t, err := m.Mount(src.Path, auth)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("mount %s:%s: %w", src.Server, src.Path, err)
	}
	return &Client{Target: t, mount: m}, nil
}

// Close tells the server the export is no longer mounted and closes the
// connections.
func (c *Client) Close() error {
	err := c.mount.Unmount()
	if c.Target.Client != c.mount.Client {
		c.Target.Close()
	}
	c.mount.Close()
	return err
}

func portmapperAnswers(server string) bool {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(server, strconv.Itoa(rpc.PmapPort)), portmapperTimeout)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "skiff"
	}
	return h
}
