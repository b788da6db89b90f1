// Package localpath is skiff's built-in dynamic provisioner, as k3s ships
// local-path-provisioner: a default StorageClass "local-path" that waits
// for the first consumer, and a node-side provisioner that, once the
// scheduler has picked a node for a claim, makes a directory under that
// node's storage dir and a `local` PersistentVolume pinned to the node,
// and removes both when a Delete-policy volume is released.
package localpath

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry/storageclass"
)

// Names of the default class and of the provisioner that serves it.
const (
	ClassName       = "local-path"
	ProvisionerName = "skiff.io/local-path"
)

// DefaultClass returns the "local-path" StorageClass every cluster starts
// with.
func DefaultClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: ClassName, Annotations: map[string]string{storageclass.IsDefaultAnnotation: "true"}},
		Provisioner:       ProvisionerName,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

// EnsureDefaultClass creates the default class through create unless it
// exists; an existing class is left as the user made it.
func EnsureDefaultClass(ctx context.Context, create func(context.Context, *storagev1.StorageClass) error) error {
	if err := create(ctx, DefaultClass()); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create storage class %s: %w", ClassName, err)
	}
	return nil
}
