package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// dialExternal connects to the etcd cluster named by --datastore-endpoint.
func dialExternal(ctx context.Context, cfg Config) (*clientv3.Client, func(), error) {
	endpoints := strings.Split(cfg.DatastoreEndpoint, ",")
	var tlsConfig *tls.Config
	if cfg.DatastoreCAFile != "" || cfg.DatastoreCertFile != "" {
		info := transport.TLSInfo{TrustedCAFile: cfg.DatastoreCAFile, CertFile: cfg.DatastoreCertFile, KeyFile: cfg.DatastoreKeyFile}
		c, err := info.ClientConfig()
		if err != nil {
			return nil, nil, fmt.Errorf("datastore TLS: %w", err)
		}
		tlsConfig = c
	}
	for i, e := range endpoints {
		endpoints[i] = strings.TrimSpace(e)
		if strings.HasPrefix(e, "https://") && tlsConfig == nil {
			tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsConfig, DialTimeout: 10 * time.Second, Context: ctx})
	if err != nil {
		return nil, nil, fmt.Errorf("connect to datastore %s: %w", cfg.DatastoreEndpoint, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Get(pingCtx, "/registry/health"); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("datastore %s unreachable: %w", cfg.DatastoreEndpoint, err)
	}
	return c, func() { c.Close() }, nil
}
