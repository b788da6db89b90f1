package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff/skiff/pkg/controllermanager"
	"github.com/skiff/skiff/pkg/leader"
	"github.com/skiff/skiff/pkg/pki"
	"github.com/skiff/skiff/pkg/scheduler"
)

// componentConfig is the client configuration of an in-process
// control-plane component, authenticated by its own client certificate (CN
// user, as upstream's component identities: system:kube-scheduler, ...).
func componentConfig(cfg Config, certs *clusterCerts, server, user string) (*rest.Config, error) {
	cert, err := certs.ca.LoadOrIssue(filepath.Join(cfg.DataDir, "tls"), filepath.Base(user), pki.CertSpec{CommonName: user, Client: true})
	if err != nil {
		return nil, fmt.Errorf("%s certificate: %w", user, err)
	}
	return &rest.Config{
		Host:            server,
		TLSClientConfig: rest.TLSClientConfig{CAData: certs.ca.CertPEM, CertData: cert.CertPEM, KeyData: cert.KeyPEM},
		QPS:             -1,
		ContentConfig:   rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf"},
	}, nil
}

// componentClient is an API client for an in-process control-plane
// component, authenticated by its own client certificate (CN user, as
// upstream's component identities: system:kube-scheduler, ...).
func componentClient(cfg Config, certs *clusterCerts, server, user string) (kubernetes.Interface, error) {
	rc, err := componentConfig(cfg, certs, server, user)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

// leaderIdentity names this server in leases: stable across restarts of
// the same server (hostname and data dir) so it retakes its leases at once.
func leaderIdentity(cfg Config) string {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(filepath.Clean(cfg.DataDir)))
	return host + "_" + hex.EncodeToString(sum[:4])
}

// runScheduler runs the scheduler while this server leads the
// kube-scheduler lease.
func runScheduler(ctx context.Context, cfg Config, certs *clusterCerts, server string, log *slog.Logger) error {
	client, err := componentClient(cfg, certs, server, "system:kube-scheduler")
	if err != nil {
		return err
	}
	log = log.With("component", "scheduler")
	go leader.Run(ctx, client, "kube-scheduler", leaderIdentity(cfg), log, func(ctx context.Context) {
		if err := scheduler.New(scheduler.Config{Client: client, Log: log}).Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("scheduler stopped", "err", err)
		}
	})
	return nil
}

// runControllerManager runs the controllers while this server leads the
// kube-controller-manager lease.
func runControllerManager(ctx context.Context, cfg Config, certs *clusterCerts, server string, log *slog.Logger) error {
	rc, err := componentConfig(cfg, certs, server, "system:kube-controller-manager")
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	log = log.With("component", "controller-manager")
	go leader.Run(ctx, client, "kube-controller-manager", leaderIdentity(cfg), log, func(ctx context.Context) {
		opts := cfg.controllerOptions()
		cm := controllermanager.Config{REST: rc, RootCA: certs.ca.CertPEM, ClusterCIDR: cfg.ClusterCIDR, Options: &opts}
		if err := controllermanager.Run(ctx, cm, log); err != nil && ctx.Err() == nil {
			log.Error("controller manager stopped", "err", err)
		}
	})
	return nil
}
