package etcd3

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// continueToken is the opaque list continuation, shaped as upstream's so
// clients that log or compare tokens see familiar values.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

const continueVersion = "meta.k8s.io/v1"

// EncodeContinue returns the continue token of a list page that ends just
// before key, read at revision rev; List resumes it from etcd.
func EncodeContinue(key, prefix string, rev int64) (string, error) {
	return encodeContinue(key, prefix, rev)
}

func encodeContinue(key, prefix string, rev int64) (string, error) {
	b, err := json.Marshal(continueToken{APIVersion: continueVersion, ResourceVersion: rev, StartKey: strings.TrimPrefix(key, prefix)})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func decodeContinue(token, prefix string) (rev int64, key string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, "", fmt.Errorf("continue key is not valid: %v", err)
	}
	var c continueToken
	if err := json.Unmarshal(b, &c); err != nil {
		return 0, "", fmt.Errorf("continue key is not valid: %v", err)
	}
	if c.APIVersion != continueVersion {
		return 0, "", fmt.Errorf("continue key is not valid: server does not recognize this encoded version %q", c.APIVersion)
	}
	if c.ResourceVersion == 0 {
		return 0, "", errors.New("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	}
	if c.StartKey == "" || strings.Contains(c.StartKey, "/../") || strings.HasPrefix(c.StartKey, "../") {
		return 0, "", errors.New("continue key is not valid: illegal start key")
	}
	return c.ResourceVersion, prefix + c.StartKey, nil
}
