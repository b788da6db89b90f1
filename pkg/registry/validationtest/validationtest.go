// Package validationtest helps tests of registry strategies compare
// validation errors exactly as kubectl prints them ("spec.ports[0].port:
// Invalid value: 0: must be between 1 and 65535, inclusive").
package validationtest

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Messages renders errs as kubectl prints them, in order.
func Messages(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// Expect fails the test (named name) unless errs are exactly want, in
// order; nil want means no errors.
func Expect(t testing.TB, name string, errs field.ErrorList, want []string) {
	t.Helper()
	if got := Messages(errs); !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", name, got, want)
	}
}
