package server

import (
	"net"
	"slices"
	"strings"
	"testing"
)

// TestNodeIP checks where the server's own node's InternalIP comes from:
// --node-ip first, then a specific bind address; and that --node-ip must
// be an address.
func TestNodeIP(t *testing.T) {
	for _, tc := range []struct {
		bind, nodeIP, want string
	}{
		{bind: "0.0.0.0", nodeIP: "192.168.250.1", want: "192.168.250.1"},
		{bind: "127.0.0.1", nodeIP: "192.168.250.1", want: "192.168.250.1"},
		{bind: "10.1.2.3", want: "10.1.2.3"},
	} {
		cfg := Config{BindAddress: tc.bind, NodeIP: tc.nodeIP}
		if got := hostIP(cfg); got != tc.want {
			t.Errorf("bind %s node-ip %q: node IP %s, want %s", tc.bind, tc.nodeIP, got, tc.want)
		}
	}
	for ip, ok := range map[string]bool{"": true, "192.168.250.1": true, "fd00::1": true, "node-1": false, "0.0.0.0": false} {
		cfg := Config{NodeIP: ip}
		cfg.setDefaults()
		err := cfg.validate()
		if ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "--node-ip")) {
			t.Errorf("--node-ip %q: validate = %v", ip, err)
		}
	}
}

// TestServingCertNamesNodeIP checks the API server's certificate holds the
// node's address, at which agents on other machines join, whether it was
// given (--node-ip, a bind address) or detected (binding all addresses).
func TestServingCertNamesNodeIP(t *testing.T) {
	for _, cfg := range []Config{
		{BindAddress: "0.0.0.0"},
		{BindAddress: "0.0.0.0", NodeIP: "192.168.250.1"},
		{BindAddress: "10.1.2.3"},
	} {
		cfg.DataDir = t.TempDir()
		cfg.setDefaults()
		certs, err := loadCerts(cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := net.ParseIP(hostIP(cfg))
		if !slices.ContainsFunc(certs.serving.Cert.IPAddresses, want.Equal) {
			t.Errorf("bind %s node-ip %q: serving certificate IPs %v lack the node IP %s", cfg.BindAddress, cfg.NodeIP, certs.serving.Cert.IPAddresses, want)
		}
	}
}
