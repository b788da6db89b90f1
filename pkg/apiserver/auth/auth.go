// Package auth authenticates API requests: client certificates signed by
// the cluster CA and bearer tokens.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// User is an authenticated caller.
type User struct {
	Name   string
	Groups []string
}

// Authenticator identifies the caller of a request.
type Authenticator interface {
	// AuthenticateRequest returns the caller and true, or false when the
	// request carries no valid credentials.
	AuthenticateRequest(r *http.Request) (*User, bool, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request) (*User, bool, error)

// AuthenticateRequest implements Authenticator.
func (f AuthenticatorFunc) AuthenticateRequest(r *http.Request) (*User, bool, error) { return f(r) }

// Union tries each authenticator in turn.
type Union []Authenticator

// AuthenticateRequest implements Authenticator.
func (u Union) AuthenticateRequest(r *http.Request) (*User, bool, error) {
	for _, a := range u {
		user, ok, err := a.AuthenticateRequest(r)
		if err != nil {
			return nil, false, err
		}
		if ok {
			return user, true, nil
		}
	}
	return nil, false, nil
}

// ClientCert authenticates TLS client certificates verified against Roots:
// the common name is the user, organizations are the groups.
type ClientCert struct {
	Roots *x509.CertPool
	// verified caches chains already verified (a signature check costs
	// more than the rest of a small request), keyed by the certificate
	// chain's hash. It is bounded; see maxVerified.
	verified sync.Map
	size     atomic.Int64
}

// maxVerified bounds the verification cache; when full it starts over.
const maxVerified = 4096

// NewClientCert returns a ClientCert authenticator for roots.
func NewClientCert(roots *x509.CertPool) *ClientCert { return &ClientCert{Roots: roots} }

// AuthenticateRequest implements Authenticator.
func (c *ClientCert) AuthenticateRequest(r *http.Request) (*User, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false, nil
	}
	leaf := r.TLS.PeerCertificates[0]
	now := time.Now()
	h := sha256.New()
	for _, cert := range r.TLS.PeerCertificates {
		h.Write(cert.Raw)
	}
	key := string(h.Sum(nil))
	if v, ok := c.verified.Load(key); ok && now.Before(v.(time.Time)) {
		return &User{Name: leaf.Subject.CommonName, Groups: leaf.Subject.Organization}, true, nil
	}
	inter := x509.NewCertPool()
	for _, cert := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(cert)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: c.Roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, false, nil
	}
	// Valid until the first certificate of the chain expires.
	until := leaf.NotAfter
	for _, cert := range chains[0] {
		if cert.NotAfter.Before(until) {
			until = cert.NotAfter
		}
	}
	if c.size.Add(1) > maxVerified {
		c.verified.Clear()
		c.size.Store(1)
	}
	c.verified.Store(key, until)
	return &User{Name: leaf.Subject.CommonName, Groups: leaf.Subject.Organization}, true, nil
}

// Tokens authenticates static bearer tokens.
type Tokens map[string]*User

// AuthenticateRequest implements Authenticator.
func (t Tokens) AuthenticateRequest(r *http.Request) (*User, bool, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return nil, false, nil
	}
	for known, user := range t {
		if subtle.ConstantTimeCompare([]byte(known), []byte(token)) == 1 {
			return user, true, nil
		}
	}
	return nil, false, nil
}

type userKey struct{}

// WithUser returns ctx carrying the authenticated user.
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the authenticated user of ctx, if any.
func UserFrom(ctx context.Context) (*User, bool) {
	u, ok := ctx.Value(userKey{}).(*User)
	return u, ok
}
