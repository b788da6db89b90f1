package runc

import "testing"

// The OCI process's noNewPrivileges follows the container's setting and is
// never set for privileged containers.
func TestBuildSpecNoNewPrivileges(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    ProcessSpec
		want bool
	}{
		{"default", ProcessSpec{}, false},
		{"requested", ProcessSpec{NoNewPrivileges: true}, true},
		{"privileged", ProcessSpec{NoNewPrivileges: true, Privileged: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := BuildSpec(ContainerSpec{Process: tc.p}).Process.NoNewPrivileges; got != tc.want {
				t.Fatalf("NoNewPrivileges = %v, want %v", got, tc.want)
			}
		})
	}
}
