package netvalidation

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Protocols are the supported port protocols.
var Protocols = sets.New(corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP)

// Port checks the fields every port of a Service, Endpoints or
// EndpointSlice has, under path: the name (a DNS label, required when the
// object has several ports), the number (1-65535), the protocol and the
// application protocol.
func Port(name string, requireName bool, number int32, protocol corev1.Protocol, appProtocol *string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if requireName && name == "" {
		errs = append(errs, field.Required(path.Child("name"), ""))
	} else if name != "" {
		errs = append(errs, invalid(path.Child("name"), name, validation.IsDNS1123Label(name))...)
	}
	errs = append(errs, invalid(path.Child("port"), number, validation.IsValidPortNum(int(number)))...)
	return append(errs, ProtocolAndApp(protocol, appProtocol, path)...)
}

// ProtocolAndApp checks a port's protocol (required, TCP, UDP or SCTP) and
// its application protocol (a qualified name), under path.
func ProtocolAndApp(protocol corev1.Protocol, appProtocol *string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if protocol == "" {
		errs = append(errs, field.Required(path.Child("protocol"), ""))
	} else if !Protocols.Has(protocol) {
		errs = append(errs, field.NotSupported(path.Child("protocol"), protocol, sets.List(Protocols)))
	}
	if appProtocol != nil {
		errs = append(errs, invalid(path.Child("appProtocol"), *appProtocol, validation.IsQualifiedName(*appProtocol))...)
	}
	return errs
}

// invalid turns apimachinery's messages about value into errors at path.
func invalid(path *field.Path, value interface{}, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(path, value, msg))
	}
	return errs
}
