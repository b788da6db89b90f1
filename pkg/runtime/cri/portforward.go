package cri

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/skiff/skiff/pkg/runtime/sandbox"
)

// portForward carries one forwarded connection: it connects to port on
// the pod's loopback address inside the sandbox's network namespace (the
// node's, for host-network pods) and copies both ways until the pod's end
// closes or the client's stream fails.
func (s *Service) portForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	sb, err := s.sandbox(sandboxID)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	if podNetwork(sb.config) {
		conn, err = sandbox.Sandbox{Dir: s.sandboxDir(sb.ID)}.DialContext(ctx, "tcp4", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp4", addr)
	}
	if err != nil {
		return fmt.Errorf("port forward to port %d of sandbox %s: %w", port, sb.ID, err)
	}
	defer conn.Close()
	fromClient := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		// The client finished sending: the pod sees EOF, and may still answer.
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		fromClient <- err
	}()
	toClient := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		toClient <- err
	}()
	select {
	case err = <-toClient:
	case err = <-fromClient:
		if err == nil {
			err = <-toClient
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("port forward to port %d of sandbox %s: %w", port, sb.ID, err)
	}
	return nil
}
