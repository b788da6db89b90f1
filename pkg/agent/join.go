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
type credentials struct{ CA, Cert, Key []byte }

// Join returns the API configuration of node name at server, obtaining a
// node certificate with token on first use and keeping it in dir.
func Join(ctx context.Context, server, token, name, dir string, log *slog.Logger) (*rest.Config, error) {
	caHash, secret, err := jointoken.Parse(token)
	if err != nil {
		return nil, err
	}
	paths := [3]string{filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")}
	creds, err := loadCredentials(paths)
	if err != nil {
		if creds, err = fetchCredentials(ctx, server, caHash, secret, name, log); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		for i, data := range [][]byte{creds.CA, creds.Cert, creds.Key} {
			if err := pki.WriteFileAtomic(paths[i], data, 0o600); err != nil {
				return nil, err
			}
		}
	}
	return &rest.Config{
		Host:            server,
		TLSClientConfig: rest.TLSClientConfig{CAData: creds.CA, CertData: creds.Cert, KeyData: creds.Key},
		QPS:             50,
		Burst:           100,
	}, nil
}

func loadCredentials(paths [3]string) (credentials, error) {
	var c credentials
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return c, err
		}
		switch i {
		case 0:
			c.CA = b
		case 1:
			c.Cert = b
		case 2:
			c.Key = b
		}
	}
	if _, err := tls.X509KeyPair(c.Cert, c.Key); err != nil {
		return c, err
	}
	return c, nil
}

// fetchCredentials asks the server for the CA (checked against the
// token's hash when it has one) and then, trusting only that CA, for a
// node certificate.
func fetchCredentials(ctx context.Context, server, caHash, secret, name string, log *slog.Logger) (credentials, error) {
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
	body, err := get(ctx, server+nodeCredentialsPath+"?node="+url.QueryEscape(name), secret, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, http.MethodPost)
	if err != nil {
		return credentials{}, fmt.Errorf("obtain node credentials: %w", err)
	}
	var c struct{ CA, Cert, Key []byte }
	if err := json.Unmarshal(body, &c); err != nil {
		return credentials{}, fmt.Errorf("decode node credentials: %w", err)
	}
	return credentials{CA: c.CA, Cert: c.Cert, Key: c.Key}, nil
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
