package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/agent"
	"github.com/skiff/skiff/pkg/api"
	"github.com/skiff/skiff/pkg/apiserver"
	"github.com/skiff/skiff/pkg/apiserver/auth"
	"github.com/skiff/skiff/pkg/jointoken"
	"github.com/skiff/skiff/pkg/pki"
	"github.com/skiff/skiff/pkg/storage/embedetcd"
	"github.com/skiff/skiff/pkg/storage/etcd3"
)

// CompactionInterval is how often etcd's history is compacted; watches and
// continue tokens can resume from revisions up to two intervals old.
const CompactionInterval = 5 * time.Minute

// Run starts the control plane and blocks until ctx ends, then shuts it
// down in order: the API server stops taking requests, then the datastore
// closes.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ver version.Info) error {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("chmod data dir: %w", err)
	}
	start := time.Now()
	certs, err := loadCerts(cfg)
	if err != nil {
		return err
	}
	token, err := loadToken(cfg, certs.ca.CertPEM)
	if err != nil {
		return err
	}

	client, newWatcher, closeStore, err := openDatastore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	store := etcd3.New(client, api.StorageCodec(), newWatcher)
	go etcd3.RunCompactor(ctx, client, CompactionInterval)

	clk := clock.RealClock{}
	built, err := buildStores(ctx, store, clk, cfg, log, certs)
	if err != nil {
		return err
	}
	stores := built.stores
	openAPI, err := openAPIHandler(stores, ver.GitVersion)
	if err != nil {
		return err
	}
	var bootstrapped atomic.Bool
	host := advertiseHost(cfg)
	handler, err := apiserver.New(apiserver.Config{
		Stores: stores,
		Authenticator: auth.Union{
			auth.NewClientCert(certs.ca.Pool()),
			auth.Tokens{token: &auth.User{Name: "skiff:node-join", Groups: []string{joinGroup, "system:authenticated"}}},
		},
		Version:         ver,
		ExternalAddress: net.JoinHostPort(host, strconv.Itoa(cfg.HTTPSPort)),
		Ready: func(ctx context.Context) error {
			if !bootstrapped.Load() {
				return errors.New("bootstrap not finished")
			}
			return built.ready()
		},
		OpenAPI:  openAPI,
		Handlers: joinHandlers(certs),
		Clock:    clk,
		Log:      log,
	})
	if err != nil {
		return err
	}

	servingCert, err := certs.serving.TLS()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.HTTPSPort)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{servingCert},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    certs.ca.Pool(),
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"h2", "http/1.1"},
		},
		// kube-apiserver's --http2-max-streams-per-connection default:
		// at Go's 250, a client with more requests in flight (a
		// controller creating a burst of pods) spills onto new
		// connections and throughput collapses.
		HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: 1000},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()

	if err := bootstrap(ctx, stores, cfg, hostIP(cfg)); err != nil {
		srv.Close()
		return fmt.Errorf("bootstrap: %w", err)
	}
	bootstrapped.Store(true)
	if err := writeKubeconfig(cfg.WriteKubeconfig, "https://"+net.JoinHostPort(host, strconv.Itoa(cfg.HTTPSPort)), certs); err != nil {
		srv.Close()
		return err
	}
	log.Info("skiff server ready", "address", ln.Addr().String(), "kubeconfig", cfg.WriteKubeconfig, "startup", time.Since(start).Round(time.Millisecond))

	if !cfg.DisableControllerManager {
		if err := runControllerManager(ctx, cfg, certs, "https://"+net.JoinHostPort(host, strconv.Itoa(cfg.HTTPSPort)), log); err != nil {
			srv.Close()
			return err
		}
	}
	if !cfg.DisableScheduler {
		if err := runScheduler(ctx, cfg, certs, "https://"+net.JoinHostPort(host, strconv.Itoa(cfg.HTTPSPort)), log); err != nil {
			srv.Close()
			return err
		}
	}
	agentDone := make(chan error, 1)
	if !cfg.DisableAgent {
		acfg, err := localAgentConfig(cfg, certs, "https://"+net.JoinHostPort(host, strconv.Itoa(cfg.HTTPSPort)), log)
		if err != nil {
			srv.Close()
			return err
		}
		go func() { agentDone <- agent.Run(ctx, acfg) }()
	} else {
		agentDone <- nil
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	if err := <-agentDone; err != nil && !errors.Is(err, context.Canceled) {
		log.Error("agent stopped", "err", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return nil
}

// localAgentConfig configures the agent of the server's own node, with a
// node client certificate issued by the cluster CA.
func localAgentConfig(cfg Config, certs *clusterCerts, server string, log *slog.Logger) (agent.Config, error) {
	name := cfg.NodeName
	if name == "" {
		n, err := agent.DefaultNodeName()
		if err != nil {
			return agent.Config{}, err
		}
		name = n
	}
	nodeCert, err := certs.ca.LoadOrIssue(filepath.Join(cfg.DataDir, "tls"), "node-"+name, pki.CertSpec{
		CommonName: "system:node:" + name, Organization: []string{"system:nodes"}, Client: true,
	})
	if err != nil {
		return agent.Config{}, fmt.Errorf("node certificate: %w", err)
	}
	nodeIP := hostIP(cfg)
	if ip := net.ParseIP(nodeIP); cfg.NodeIP == "" && (ip == nil || ip.IsLoopback()) {
		nodeIP = agent.HostIP()
	}
	names := []string{name, "localhost"}
	if h, err := os.Hostname(); err == nil {
		names = append(names, h)
	}
	serving, err := certs.ca.LoadOrIssue(filepath.Join(cfg.DataDir, "tls"), "kubelet-"+name, pki.CertSpec{
		CommonName: "system:node:" + name, Organization: []string{"system:nodes"}, DNSNames: names,
		IPs: []net.IP{net.ParseIP(nodeIP), net.ParseIP("127.0.0.1")}, Server: true,
	})
	if err != nil {
		return agent.Config{}, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	servingPair, err := serving.TLS()
	if err != nil {
		return agent.Config{}, err
	}
	kopts, err := agent.ParseKubeletArgs(cfg.KubeletArgs)
	if err != nil {
		return agent.Config{}, err
	}
	return agent.Config{
		Kubelet:                &kopts,
		ServingCert:            servingPair,
		ClientCAs:              certs.ca.Pool(),
		DataDir:                filepath.Join(cfg.DataDir, "agent"),
		NodeName:               name,
		NodeIP:                 nodeIP,
		ControlPlane:           true,
		ClusterDNS:             cfg.ClusterDNS,
		ClusterDomain:          cfg.ClusterDomain,
		ClusterCIDR:            cfg.ClusterCIDR,
		ServiceCIDR:            cfg.ServiceCIDR,
		CleanupOnExit:          cfg.CleanupOnExit,
		NodeLeaseRenewInterval: cfg.controllerOptions().LeaseRenewInterval(),
		RESTConfig: &rest.Config{
			Host:            server,
			TLSClientConfig: rest.TLSClientConfig{CAData: certs.ca.CertPEM, CertData: nodeCert.CertPEM, KeyData: nodeCert.KeyPEM},
			QPS:             50,
			Burst:           100,
		},
		Log: log.With("component", "agent"),
	}, nil
}

// advertiseHost is the address clients on this machine use to reach us.
func advertiseHost(cfg Config) string {
	ip := net.ParseIP(cfg.BindAddress)
	if ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return cfg.BindAddress
}

type clusterCerts struct {
	ca                            *pki.CA
	serving, admin, kubeletClient *pki.Issued
}

func loadCerts(cfg Config) (*clusterCerts, error) {
	dir := filepath.Join(cfg.DataDir, "tls")
	ca, err := pki.LoadOrCreateCA(dir, "ca", "skiff-ca")
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + cfg.ClusterDomain}
	if h, err := os.Hostname(); err == nil {
		dns = append(dns, h)
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	if apiIP, err := firstServiceIP(cfg.ServiceCIDR); err == nil {
		ips = append(ips, apiIP)
	}
	// Agents on other machines join at the node's address (the outward
	// one unless --node-ip or a bind address names it).
	for _, a := range []string{cfg.BindAddress, hostIP(cfg)} {
		if ip := net.ParseIP(a); ip != nil && !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	serving, err := ca.LoadOrIssue(dir, "serving", pki.CertSpec{CommonName: "kube-apiserver", DNSNames: dns, IPs: ips, Server: true})
	if err != nil {
		return nil, err
	}
	admin, err := ca.LoadOrIssue(dir, "admin", pki.CertSpec{CommonName: "system:admin", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		return nil, err
	}
	kubeletClient, err := ca.LoadOrIssue(dir, "apiserver-kubelet-client", pki.CertSpec{CommonName: "skiff:apiserver-kubelet-client", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		return nil, err
	}
	return &clusterCerts{ca: ca, serving: serving, admin: admin, kubeletClient: kubeletClient}, nil
}

// loadToken returns the join secret: from --token (bare or in the full
// K10 form), else the one saved in the data dir, else a new random one. The
// full token, pinning the CA, is saved to <data-dir>/token for agents.
func loadToken(cfg Config, caPEM []byte) (string, error) {
	path := filepath.Join(cfg.DataDir, "token")
	secret := ""
	if cfg.Token != "" {
		_, s, err := jointoken.Parse(cfg.Token)
		if err != nil {
			return "", fmt.Errorf("--token: %w", err)
		}
		secret = s
	} else if b, err := os.ReadFile(path); err == nil {
		if _, s, err := jointoken.Parse(string(b)); err == nil {
			secret = s
		}
	}
	if secret == "" {
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		secret = hex.EncodeToString(buf)
	}
	return secret, pki.WriteFileAtomic(path, []byte(jointoken.Format(caPEM, secret)+"\n"), 0o600)
}

// openDatastore starts the embedded etcd or connects to an external one. It
// returns the client, a factory of independent watch streams (nil for the
// default), and the function that closes the datastore.
func openDatastore(ctx context.Context, cfg Config) (*clientv3.Client, func() clientv3.Watcher, func(), error) {
	if cfg.DatastoreEndpoint != "" {
		c, closeFn, err := dialExternal(ctx, cfg)
		return c, nil, closeFn, err
	}
	e, err := embedetcd.Start(ctx, embedetcd.Config{Dir: filepath.Join(cfg.DataDir, "db")})
	if err != nil {
		return nil, nil, nil, err
	}
	return e.Client(), e.NewWatcher, e.Close, nil
}

func writeKubeconfig(path, server string, certs *clusterCerts) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["default"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: certs.ca.CertPEM}
	kc.AuthInfos["default"] = &clientcmdapi.AuthInfo{ClientCertificateData: certs.admin.CertPEM, ClientKeyData: certs.admin.KeyPEM}
	kc.Contexts["default"] = &clientcmdapi.Context{Cluster: "default", AuthInfo: "default"}
	kc.CurrentContext = "default"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return pki.WriteFileAtomic(path, data, 0o600)
}
