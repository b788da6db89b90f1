// Package embedetcd runs etcd inside the skiff server process.
//
// The embedded member listens only on unix sockets inside its data directory
// (no TCP port to secure) and the API server talks to it through an
// in-process client that calls the etcd server directly, without gRPC.
package embedetcd

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
)

// Config describes an embedded etcd member.
type Config struct {
	// Dir holds etcd's data (member/ wal and snapshots); created 0700.
	Dir string
	// Name is the member name; defaults to "skiff".
	Name string
	// MaxRequestBytes caps one write; defaults to 4 MiB so any object the
	// API server accepts (request bodies up to 3 MiB) fits.
	MaxRequestBytes uint
	// ProgressNotifyInterval is how often idle watches learn the current
	// revision (the source of watch bookmarks); defaults to 5s.
	ProgressNotifyInterval time.Duration
	// LogLevel is etcd's zap log level; defaults to "fatal": etcd logs
	// errors with stack traces on every orderly shutdown, and real failures
	// reach the API server as request errors anyway.
	LogLevel string
}

// Server is a running embedded etcd member.
type Server struct {
	etcd   *embed.Etcd
	client *clientv3.Client
}

// Start starts etcd and waits until it serves requests or ctx ends.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Name == "" {
		cfg.Name = "skiff"
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = 4 << 20
	}
	if cfg.ProgressNotifyInterval == 0 {
		cfg.ProgressNotifyInterval = 5 * time.Second
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "fatal"
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd dir: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod etcd dir: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.LogLevel = cfg.LogLevel
	ec.MaxRequestBytes = cfg.MaxRequestBytes
	ec.WatchProgressNotifyInterval = cfg.ProgressNotifyInterval
	// A single member elects itself after a random 1 to 10 ticks; short
	// ticks make that 10-100 ms instead of 0.1-1 s, which is most of a cold
	// start. Heartbeats have no peer to reach, so short ticks cost nothing.
	ec.TickMs = 10
	ec.ElectionMs = 100
	// The member listens on unix sockets in its 0700 data dir. URLs with a
	// path in the host do not survive formatting and parsing, so the
	// advertised URLs (which only a single member ever reads) are
	// placeholders; the API server uses the in-process client anyway.
	peer := url.URL{Scheme: "unix", Host: filepath.Join(cfg.Dir, "peer.sock")}
	client := url.URL{Scheme: "unix", Host: filepath.Join(cfg.Dir, "client.sock")}
	ec.ListenPeerUrls = []url.URL{peer}
	ec.AdvertisePeerUrls = []url.URL{{Scheme: "unix", Host: "skiff-etcd-peer"}}
	ec.ListenClientUrls = []url.URL{client}
	ec.AdvertiseClientUrls = []url.URL{{Scheme: "unix", Host: "skiff-etcd-client"}}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.ListenMetricsUrls = nil
	ec.Metrics = "basic"
	// Stale sockets from a killed process would make listen fail.
	_ = os.Remove(peer.Host)
	_ = os.Remove(client.Host)

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Server{etcd: e, client: v3client.New(e.Server)}, nil
}

// Client returns an in-process client of the member.
func (s *Server) Client() *clientv3.Client { return s.client }

// NewWatcher returns an in-process watch stream of its own, so progress
// requests on it concern only its watches.
func (s *Server) NewWatcher() clientv3.Watcher {
	wc := adapter.WatchServerToWatchClient(v3rpc.NewWatchServer(s.etcd.Server))
	return blankWatcher{clientv3.NewWatchFromWatchClient(wc, s.client)}
}

// blankWatcher hides context values from etcd's tracing, which would race
// on them, as etcd's own in-process client does.
type blankWatcher struct{ clientv3.Watcher }

type blankContext struct{ context.Context }

func (blankContext) String() string { return "(blankCtx)" }

func (w blankWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	return w.Watcher.Watch(blankContext{ctx}, key, opts...)
}

// Err reports fatal errors of the running member.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops the member, waiting for in-flight requests.
func (s *Server) Close() {
	s.client.Close()
	s.etcd.Close()
}
