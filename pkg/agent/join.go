package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"

	"github.com/skiff/skiff/pkg/jointoken"
	"github.com/skiff/skiff/pkg/pki"
)

// Paths of the server's join endpoints (see pkg/server).
const (
	caCertsPath         = "/cacerts"
	nodeCredentialsPath = "/v1-skiff/node-credentials"
)

// credentials are a joined node's files in its data dir.
type credentials struct{ CA, Cert, Key, ServingCert, ServingKey []byte }

// Joined is what an agent gets from joining.
type Joined struct {
	// RESTConfig reaches the API server as the node.
	RESTConfig *rest.Config
	// ServingCert is the kubelet's HTTPS certificate, ClientCAs the CA the
	// API server's client certificate is checked against.
	ServingCert tls.Certificate
	ClientCAs   *x509.CertPool
}

// Join obtains (on first use; later from dir) the credentials of node name
// at nodeIP from server with token.
func Join(ctx context.Context, server, token, name, nodeIP, dir string, log *slog.Logger) (*Joined, error) {
	caHash, secret, err := jointoken.Parse(token)
	if err != nil {
		return nil, err
	}
	paths := [5]string{filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key"), filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")}
	creds, err := loadCredentials(paths)
	if err != nil {
		if creds, err = fetchCredentials(ctx, server, caHash, secret, name, nodeIP, log); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		for i, data := range [][]byte{creds.CA, creds.Cert, creds.Key, creds.ServingCert, creds.ServingKey} {
			if err := pki.WriteFileAtomic(paths[i], data, 0o600); err != nil {
				return nil, err
			}
		}
	}
	serving, err := tls.X509KeyPair(creds.ServingCert, creds.ServingKey)
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(creds.CA)
	return &Joined{
		RESTConfig: &rest.Config{
			Host:            server,
			TLSClientConfig: rest.TLSClientConfig{CAData: creds.CA, CertData: creds.Cert, KeyData: creds.Key},
			QPS:             50,
			Burst:           100,
		},
		ServingCert: serving,
		ClientCAs:   pool,
	}, nil
}

func loadCredentials(paths [5]string) (credentials, error) {
	var files [5][]byte
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return credentials{}, err
		}
		files[i] = b
	}
	c := credentials{CA: files[0], Cert: files[1], Key: files[2], ServingCert: files[3], ServingKey: files[4]}
	if _, err := tls.X509KeyPair(c.Cert, c.Key); err != nil {
		return c, err
	}
	return c, nil
}

// fetchCredentials asks the server for the CA (checked against the
// token's hash when it has one) and then, trusting only that CA, for a
// node certificate.
func fetchCredentials(ctx context.Context, server, caHash, secret, name, nodeIP string, log *slog.Logger) (credentials, error) {
	ca, err := get(ctx, server+caCertsPath, secret, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, http.MethodGet)
	if err != nil {
		return credentials{}, fmt.Errorf("fetch cluster CA: %w", err)
	}
	switch {
	case caHash == "":
		log.Warn("joining with a bare token: trusting the CA the server presents; use the full token from the server's data dir to pin it")
	case jointoken.CAHash(ca) != caHash:
		return credentials{}, errors.New("the server's CA does not match the token's CA hash")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return credentials{}, errors.New("server sent no CA certificate")
	}
	body, err := get(ctx, server+nodeCredentialsPath+"?node="+url.QueryEscape(name)+"&ip="+url.QueryEscape(nodeIP), secret, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, http.MethodPost)
	if err != nil {
		return credentials{}, fmt.Errorf("obtain node credentials: %w", err)
	}
	var c struct {
		CA, Cert, Key           []byte
		ServingCert, ServingKey []byte
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return credentials{}, fmt.Errorf("decode node credentials: %w", err)
	}
	return credentials{CA: c.CA, Cert: c.Cert, Key: c.Key, ServingCert: c.ServingCert, ServingKey: c.ServingKey}, nil
}

func get(ctx context.Context, u, secret string, tlsConfig *tls.Config, method string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, body)
	}
	return body, nil
}
