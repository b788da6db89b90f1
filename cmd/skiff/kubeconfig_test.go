package main

import (
	"slices"
	"testing"
)

func TestKubeconfigArgs(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	has := func(paths ...string) func(string) bool {
		return func(p string) bool { return slices.Contains(paths, p) }
	}
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		exists     func(string) bool
		rest       []string
		kubeconfig string
		tried      []string
	}{
		{"default data dir", []string{"get", "pods"}, nil, has("/var/lib/skiff/admin.kubeconfig"), []string{"get", "pods"}, "/var/lib/skiff/admin.kubeconfig", nil},
		{"--data-dir is taken out", []string{"--data-dir", "/d", "get", "pods"}, nil, has("/d/admin.kubeconfig"), []string{"get", "pods"}, "/d/admin.kubeconfig", nil},
		{"--data-dir=", []string{"get", "--data-dir=/d", "pods"}, nil, has("/d/admin.kubeconfig"), []string{"get", "pods"}, "/d/admin.kubeconfig", nil},
		{"SKIFF_DATA_DIR", []string{"get", "pods"}, map[string]string{"SKIFF_DATA_DIR": "/e"}, has("/e/admin.kubeconfig"), []string{"get", "pods"}, "/e/admin.kubeconfig", nil},
		{"KUBECONFIG wins", []string{"get", "pods"}, map[string]string{"KUBECONFIG": "/k"}, has("/var/lib/skiff/admin.kubeconfig"), []string{"get", "pods"}, "", nil},
		{"--kubeconfig wins", []string{"--kubeconfig=/k", "get"}, nil, has("/var/lib/skiff/admin.kubeconfig"), []string{"--kubeconfig=/k", "get"}, "", nil},
		{"kubectl's own default", []string{"get"}, map[string]string{"HOME": "/h"}, has("/h/.kube/config"), []string{"get"}, "", nil},
		{"nothing found says what was tried", []string{"get"}, map[string]string{"HOME": "/h", "SKIFF_DATA_DIR": "/e"}, has(), []string{"get"}, "", []string{"/e/admin.kubeconfig", "/h/.kube/config"}},
		{"after -- is kubectl's", []string{"exec", "p", "--", "x", "--data-dir", "y"}, nil, has("/var/lib/skiff/admin.kubeconfig"), []string{"exec", "p", "--", "x", "--data-dir", "y"}, "/var/lib/skiff/admin.kubeconfig", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest, kc, tried := kubeconfigArgs(tc.args, env(tc.env), tc.exists)
			if !slices.Equal(rest, tc.rest) || kc != tc.kubeconfig || !slices.Equal(tried, tc.tried) {
				t.Fatalf("got %q %q %q, want %q %q %q", rest, kc, tried, tc.rest, tc.kubeconfig, tc.tried)
			}
		})
	}
}
