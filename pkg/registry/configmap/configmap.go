// Package configmap is the registry strategy for core/v1 configmaps.
package configmap

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
)

// MaxSize is the largest total size of a configmap's data (upstream's 1 MiB).
const MaxSize = 1 << 20

// NewResource describes the configmaps resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("configmaps"),
		Kind:                 "ConfigMap",
		SingularName:         "configmap",
		ShortNames:           []string{"cm"},
		Namespaced:           true,
		New:                  func() runtime.Object { return &corev1.ConfigMap{} },
		NewList:              func() runtime.Object { return &corev1.ConfigMapList{} },
		Strategy:             strategy{},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Data", Type: "integer", Description: corev1.ConfigMap{}.SwaggerDoc()["data"]},
				registry.AgeColumn,
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				cm := obj.(*corev1.ConfigMap)
				return []interface{}{cm.Name, int64(len(cm.Data) + len(cm.BinaryData)), registry.Age(cm.CreationTimestamp, now)}
			},
		},
	}
}

type strategy struct{ registry.DefaultStrategy }

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return Validate(obj.(*corev1.ConfigMap))
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	cm, oldCM := obj.(*corev1.ConfigMap), old.(*corev1.ConfigMap)
	errs := Validate(cm)
	if oldCM.Immutable != nil && *oldCM.Immutable {
		if cm.Immutable == nil || !*cm.Immutable {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
		}
		if !apiequality.Semantic.DeepEqual(cm.Data, oldCM.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
		if !apiequality.Semantic.DeepEqual(cm.BinaryData, oldCM.BinaryData) {
			errs = append(errs, field.Forbidden(field.NewPath("binaryData"), "field is immutable when `immutable` is set"))
		}
	}
	return errs
}

// Validate checks keys and total size as upstream's ValidateConfigMap does.
func Validate(cm *corev1.ConfigMap) field.ErrorList {
	var errs field.ErrorList
	total := 0
	for k, v := range cm.Data {
		p := field.NewPath("data").Key(k)
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(p, k, msg))
		}
		if _, dup := cm.BinaryData[k]; dup {
			errs = append(errs, field.Invalid(p, k, "duplicate of key present in binaryData"))
		}
		total += len(v)
	}
	for k, v := range cm.BinaryData {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, msg))
		}
		total += len(v)
	}
	if total > MaxSize {
		errs = append(errs, field.TooLong(field.NewPath(""), "", MaxSize))
		errs[len(errs)-1].Detail = fmt.Sprintf("must have at most %d bytes", MaxSize)
	}
	return errs
}
