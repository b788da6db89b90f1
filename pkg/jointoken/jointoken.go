// Package jointoken formats and parses the token agents join a cluster
// with. The full form, as k3s writes it, pins the cluster CA:
//
//	K10<sha256 of the CA bundle, hex>::server:<secret>
//
// so an agent can trust the server before it has the CA. A bare secret is
// accepted too; the agent then trusts the first CA it sees (and says so).
package jointoken

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

const prefix = "K10"

// Format returns the full token for a CA bundle and secret.
func Format(caPEM []byte, secret string) string {
	return prefix + CAHash(caPEM) + "::server:" + secret
}

// CAHash is the hex sha256 of a CA bundle.
func CAHash(caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return hex.EncodeToString(sum[:])
}

// Parse splits a token into the CA hash (empty for a bare secret) and the
// secret.
func Parse(token string) (caHash, secret string, err error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return "", "", errors.New("empty token")
	}
	if !strings.HasPrefix(token, prefix) || !strings.Contains(token, "::") {
		return "", token, nil
	}
	hash, rest, _ := strings.Cut(strings.TrimPrefix(token, prefix), "::")
	_, secret, ok := strings.Cut(rest, ":")
	if !ok || secret == "" || len(hash) != 64 {
		return "", "", errors.New("malformed token: want K10<ca-hash>::<user>:<secret>")
	}
	return hash, secret, nil
}
