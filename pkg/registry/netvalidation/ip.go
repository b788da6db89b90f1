// Package netvalidation checks the network fields API objects carry (IP
// addresses, CIDRs, ports and protocols) the way upstream's API validation
// does, with its messages: addresses are parsed leniently (legacy fields
// accept non-canonical forms), and addresses that traffic is sent to
// (endpoints, external IPs) may not be special-purpose ones.
package netvalidation

import (
	"fmt"
	"net"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// IP checks that value is an IP address, in upstream's words for legacy
// fields ("must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)").
func IP(fldPath *field.Path, value string) field.ErrorList {
	return validation.IsValidIPForLegacyField(fldPath, value, false, nil)
}

// CIDR checks that value is a CIDR, as upstream checks legacy CIDR fields.
func CIDR(fldPath *field.Path, value string) field.ErrorList {
	return validation.IsValidCIDRForLegacyField(fldPath, value, false, nil)
}

// Loopback says whether NonSpecial accepts loopback addresses.
type Loopback bool

// The Loopback choices.
const (
	RejectLoopback Loopback = false
	// AllowLoopback is for endpoints: a server bound to loopback publishes
	// itself there as the kubernetes Service's endpoint (upstream rejects
	// loopback endpoints; its API server never binds loopback only).
	AllowLoopback Loopback = true
)

// NonSpecial checks that value is an IP address that is not unspecified,
// link-local or (unless loopback is allowed) loopback, as upstream's
// ValidateNonSpecialIP does for endpoints and external IPs.
func NonSpecial(fldPath *field.Path, value string, loopback Loopback) field.ErrorList {
	ip := net.ParseIP(value)
	if ip == nil {
		return field.ErrorList{field.Invalid(fldPath, value, "must be a valid IP address")}
	}
	var errs field.ErrorList
	if ip.IsUnspecified() {
		errs = append(errs, field.Invalid(fldPath, value, fmt.Sprintf("may not be unspecified (%v)", value)))
	}
	if ip.IsLoopback() && loopback == RejectLoopback {
		errs = append(errs, field.Invalid(fldPath, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
	}
	if ip.IsLinkLocalUnicast() {
		errs = append(errs, field.Invalid(fldPath, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
	}
	if ip.IsLinkLocalMulticast() {
		errs = append(errs, field.Invalid(fldPath, value, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
	}
	return errs
}

// Endpoint checks an address traffic is sent to: a valid IP that is not
// special (loopback as given).
func Endpoint(fldPath *field.Path, value string, loopback Loopback) field.ErrorList {
	if errs := IP(fldPath, value); len(errs) > 0 {
		return errs
	}
	return NonSpecial(fldPath, value, loopback)
}
