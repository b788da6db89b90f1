// Package api holds the scheme and codecs for every API object skiff serves
// or stores: the k8s.io/api types in their external versions (skiff keeps no
// internal versions, so nothing is converted between request and storage)
// plus the meta.k8s.io types used for tables, metadata-only responses and
// discovery.
package api

import (
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1beta1 "k8s.io/apimachinery/pkg/apis/meta/v1beta1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
)

// NewScheme returns a scheme with every served type registered.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	must(clientscheme.AddToScheme(s))
	must(metav1.AddMetaToScheme(s))
	must(metav1beta1.AddMetaToScheme(s))
	must(apidiscoveryv2.AddToScheme(s))
	must(apidiscoveryv2beta1.AddToScheme(s))
	metav1.AddToGroupVersion(s, schema.GroupVersion{Group: "meta.k8s.io", Version: "v1"})
	return s
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// Scheme is the read-only scheme of served types. It is built once at
// start-up and never modified afterwards.
var Scheme = NewScheme()

// Codecs are the serializers (JSON, YAML, protobuf, CBOR) for Scheme.
var Codecs = serializer.NewCodecFactory(Scheme)

// StrictCodecs decode JSON and YAML strictly: unknown and duplicate fields are
// errors, as fieldValidation=Strict requires.
var StrictCodecs = serializer.NewCodecFactory(Scheme, serializer.EnableStrict)

// StorageCodec encodes objects as stored in etcd: protobuf with the k8s
// envelope, as upstream stores them.
func StorageCodec() runtime.Codec {
	pb := protobuf.NewSerializer(Scheme, Scheme)
	enc := runtime.WithVersionEncoder{Version: ownKind{}, Encoder: pb, ObjectTyper: Scheme}
	return runtime.NewCodec(enc, pb)
}

// ownKind encodes every object as the one kind its Go type is registered as.
type ownKind struct{}

func (ownKind) Identifier() string { return "own-kind" }

func (ownKind) KindForGroupVersionKinds(kinds []schema.GroupVersionKind) (schema.GroupVersionKind, bool) {
	if len(kinds) == 0 {
		return schema.GroupVersionKind{}, false
	}
	return kinds[0], true
}

// ParameterCodec decodes query parameters into metav1 option structs.
var ParameterCodec = runtime.NewParameterCodec(Scheme)
