package server_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/pki"
	"github.com/skiff/skiff/pkg/server"
	"github.com/skiff/skiff/pkg/server/servertest"
)

// TestExternalDatastore runs the server against a separate etcd reached
// over TLS with a client certificate, as --datastore-endpoint does.
func TestExternalDatastore(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "etcd-ca", "etcd-ca")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LoadOrIssue(dir, "etcd-server", pki.CertSpec{CommonName: "etcd", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LoadOrIssue(dir, "etcd-client", pki.CertSpec{CommonName: "skiff", Client: true}); err != nil {
		t.Fatal(err)
	}
	port, err := servertest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.LogLevel = "fatal"
	client := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", port)}
	peer := url.URL{Scheme: "unix", Host: filepath.Join(dir, "peer.sock")}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{{Scheme: "unix", Host: "peer"}}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo = embed.NewConfig().ClientTLSInfo
	cfg.ClientTLSInfo.CertFile = filepath.Join(dir, "etcd-server.crt")
	cfg.ClientTLSInfo.KeyFile = filepath.Join(dir, "etcd-server.key")
	cfg.ClientTLSInfo.TrustedCAFile = filepath.Join(dir, "etcd-ca.crt")
	cfg.ClientTLSInfo.ClientCertAuth = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	<-e.Server.ReadyNotify()

	srv := servertest.Start(t, func(c *server.Config) {
		c.DatastoreEndpoint = client.String()
		c.DatastoreCAFile = filepath.Join(dir, "etcd-ca.crt")
		c.DatastoreCertFile = filepath.Join(dir, "etcd-client.crt")
		c.DatastoreKeyFile = filepath.Join(dir, "etcd-client.key")
	})
	ctx := context.Background()
	w, err := srv.Client.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := srv.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := <-w.ResultChan(); ev.Object.(*corev1.ConfigMap).Name != "x" {
		t.Fatalf("watch through external etcd: %v", ev)
	}
	resp, err := e.Server.KV().Range(ctx, []byte("/registry/configmaps/default/x"), nil, mvcc.RangeOptions{})
	if err != nil || len(resp.KVs) != 1 {
		t.Fatalf("object not stored in the external etcd: %v", err)
	}
}
