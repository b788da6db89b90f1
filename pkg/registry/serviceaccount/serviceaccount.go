// Package serviceaccount is the registry strategy for core/v1
// serviceaccounts.
package serviceaccount

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff/skiff/pkg/registry"
)

// NewResource describes the serviceaccounts resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("serviceaccounts"),
		Kind:                 "ServiceAccount",
		SingularName:         "serviceaccount",
		ShortNames:           []string{"sa"},
		Namespaced:           true,
		New:                  func() runtime.Object { return &corev1.ServiceAccount{} },
		NewList:              func() runtime.Object { return &corev1.ServiceAccountList{} },
		Strategy:             registry.DefaultStrategy{},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Secrets", Type: "string", Description: corev1.ServiceAccount{}.SwaggerDoc()["secrets"]},
				registry.AgeColumn,
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				s := obj.(*corev1.ServiceAccount)
				return []interface{}{s.Name, int64(len(s.Secrets)), registry.Age(s.CreationTimestamp, now)}
			},
		},
	}
}
