package netvalidation

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry/validationtest"
)

func TestEndpoint(t *testing.T) {
	p := field.NewPath("ip")
	cases := []struct {
		ip       string
		loopback Loopback
		want     []string
	}{
		{"10.1.2.3", RejectLoopback, nil},
		{"2001:db8::1", RejectLoopback, nil},
		{"nope", RejectLoopback, []string{`ip: Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`}},
		{"0.0.0.0", RejectLoopback, []string{`ip: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)`}},
		{"127.0.0.1", RejectLoopback, []string{`ip: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)`}},
		{"127.0.0.1", AllowLoopback, nil},
		{"169.254.1.1", AllowLoopback, []string{`ip: Invalid value: "169.254.1.1": may not be in the link-local range (169.254.0.0/16, fe80::/10)`}},
		{"224.0.0.1", AllowLoopback, []string{`ip: Invalid value: "224.0.0.1": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)`}},
	}
	for _, tc := range cases {
		validationtest.Expect(t, tc.ip, Endpoint(p, tc.ip, tc.loopback), tc.want)
	}
}

func TestCIDR(t *testing.T) {
	p := field.NewPath("cidr")
	if errs := CIDR(p, "10.42.0.0/24"); len(errs) != 0 {
		t.Fatal(errs)
	}
	validationtest.Expect(t, "CIDR", CIDR(p, "10.42.0.0"), []string{`cidr: Invalid value: "10.42.0.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)`})
}
