package secret

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry/validationtest"
)

func TestValidate(t *testing.T) {
	d := func(kv ...string) map[string][]byte {
		m := map[string][]byte{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = []byte(kv[i+1])
		}
		return m
	}
	cases := []struct {
		name string
		typ  corev1.SecretType
		data map[string][]byte
		ann  map[string]string
		want []string
	}{
		{"opaque", corev1.SecretTypeOpaque, d("a", "1"), nil, nil},
		{"custom type", "example.com/thing", nil, nil, nil},
		{"bad key", corev1.SecretTypeOpaque, d("a/b", "1"), nil, []string{`data[a/b]: Invalid value: "a/b": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`}},
		{"too large", corev1.SecretTypeOpaque, map[string][]byte{"a": make([]byte, MaxSize+1)}, nil, []string{"data: Too long: may not be more than 1048576 bytes"}},
		{"tls", corev1.SecretTypeTLS, d("tls.crt", ""), nil, []string{"data[tls.key]: Required value"}},
		{"tls empty values are present", corev1.SecretTypeTLS, d("tls.crt", "", "tls.key", ""), nil, nil},
		{"basic auth", corev1.SecretTypeBasicAuth, nil, nil, []string{"data[username]: Required value", "data[password]: Required value"}},
		{"basic auth password only", corev1.SecretTypeBasicAuth, d("password", "x"), nil, nil},
		{"ssh", corev1.SecretTypeSSHAuth, d("ssh-privatekey", ""), nil, []string{"data[ssh-privatekey]: Required value"}},
		{"dockerconfigjson missing", corev1.SecretTypeDockerConfigJson, nil, nil, []string{"data[.dockerconfigjson]: Required value"}},
		{"dockerconfigjson not an object", corev1.SecretTypeDockerConfigJson, d(".dockerconfigjson", "[1]"), nil, []string{
			`data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": json: cannot unmarshal array into Go value of type map[string]interface {}`}},
		{"dockercfg", corev1.SecretTypeDockercfg, d(".dockercfg", `{"registry":{}}`), nil, nil},
		{"service account token", corev1.SecretTypeServiceAccountToken, nil, nil, []string{"metadata.annotations[kubernetes.io/service-account.name]: Required value"}},
		{"service account token named", corev1.SecretTypeServiceAccountToken, nil, map[string]string{"kubernetes.io/service-account.name": "default"}, nil},
	}
	for _, tc := range cases {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: tc.ann}, Type: tc.typ, Data: tc.data}
		validationtest.Expect(t, tc.name, Validate(s), tc.want)
	}
}

func TestUpdate(t *testing.T) {
	old := &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"a": []byte("1")}, Immutable: ptr.To(true)}
	s := old.DeepCopy()
	s.Type = "example.com/other"
	s.Data["a"] = []byte("2")
	got := strings.Join(validationtest.Messages(strategy{}.ValidateUpdate(context.Background(), s, old)), "\n")
	for _, want := range []string{`type: Invalid value: "example.com/other": field is immutable`, "data: Forbidden: field is immutable when `immutable` is set"} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %q lack %q", got, want)
		}
	}
}

func TestDefaultFoldsStringData(t *testing.T) {
	s := &corev1.Secret{Data: map[string][]byte{"a": []byte("old"), "b": []byte("kept")}, StringData: map[string]string{"a": "new", "c": "3"}}
	strategy{}.Default(s)
	if s.Type != corev1.SecretTypeOpaque || s.StringData != nil || string(s.Data["a"]) != "new" || string(s.Data["b"]) != "kept" || string(s.Data["c"]) != "3" {
		t.Fatalf("%+v", s)
	}
}
