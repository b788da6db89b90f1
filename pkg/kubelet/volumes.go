package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/kubelet/atomicwriter"
	"github.com/skiff/skiff/pkg/volume/nodedir"
	"github.com/skiff/skiff/pkg/volume/ownership"
)

// setupVolumes prepares the pod's volumes on the node and returns their
// host paths by volume name.
func (k *Kubelet) setupVolumes(ctx context.Context, pod *corev1.Pod) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(k.podDir(pod.UID), "volumes", v.Name)
		var err error
		switch {
		case v.EmptyDir != nil:
			err = emptyDir(pod, dir, v.EmptyDir)
		case v.HostPath != nil:
			dir, err = v.HostPath.Path, nodedir.CheckHostPath(v.HostPath.Path, v.HostPath.Type)
		case v.ConfigMap != nil:
			err = k.configMapVolume(ctx, pod.Namespace, dir, v.ConfigMap)
		case v.Secret != nil:
			err = k.secretVolume(ctx, pod.Namespace, dir, v.Secret)
		case v.DownwardAPI != nil:
			err = k.downwardVolume(ctx, pod, dir, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
		case v.Projected != nil:
			err = k.projectedVolume(ctx, pod, dir, v.Projected)
		case k.volumes.Handles(&v):
			// Claims, gitRepo, nfs: the volume manager's errors name the
			// volume already, as upstream's FailedMount messages do.
			if err := k.volumes.SetUp(ctx, pod, &v, dir); err != nil {
				return nil, err
			}
		default:
			err = fmt.Errorf("volume %q: this volume type is not supported yet", v.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		out[v.Name] = dir
	}
	return out, nil
}

// emptyDir makes the pod's emptyDir; a new one (or a new tmpfs) takes
// the pod's fsGroup, as upstream's does at its one SetUp.
func emptyDir(pod *corev1.Pod, dir string, src *corev1.EmptyDirVolumeSource) error {
	_, statErr := os.Stat(dir)
	created := os.IsNotExist(statErr)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if created {
		if err := os.Chmod(dir, 0o777); err != nil {
			return err
		}
	}
	if src.Medium != corev1.StorageMediumMemory {
		if created {
			return ownership.ForPod(pod, dir, false)
		}
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		return nil
	}
	opts := "mode=0777"
	if src.SizeLimit != nil && !src.SizeLimit.IsZero() {
		opts += ",size=" + strconv.FormatInt(src.SizeLimit.Value(), 10)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return err
	}
	return ownership.ForPod(pod, dir, false)
}

// writeVolume makes dir hold exactly files (path -> content) with modes,
// through the atomic writer: readers see the old or the new set, never a
// mix, and an unchanged set rewrites nothing.
func (k *Kubelet) writeVolume(dir string, files map[string][]byte, modes map[string]int32) error {
	payload := make(map[string]atomicwriter.File, len(files))
	for p, data := range files {
		payload[p] = atomicwriter.File{Data: data, Mode: os.FileMode(modes[p])}
	}
	_, err := atomicwriter.Write(dir, payload, k.cfg.Clock.Now())
	return err
}

func keyFiles(data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, optional bool) (map[string][]byte, map[string]int32, error) {
	mode := int32(0o644)
	if defaultMode != nil {
		mode = *defaultMode
	}
	files, modes := map[string][]byte{}, map[string]int32{}
	if len(items) == 0 {
		for k, v := range data {
			files[k], modes[k] = v, mode
		}
		return files, modes, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, nil, fmt.Errorf("key %q not found", it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = *it.Mode
		}
		files[it.Path], modes[it.Path] = v, m
	}
	return files, modes, nil
}

// configMap reads a ConfigMap a volume references: from its watch once
// the pod is registered, else from the API.
func (k *Kubelet) configMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	if k.objects != nil {
		return k.objects.ConfigMap(ctx, ns, name)
	}
	return k.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
}

// secret reads a Secret a volume references, as configMap does.
func (k *Kubelet) secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	if k.objects != nil {
		return k.objects.Secret(ctx, ns, name)
	}
	return k.cfg.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

// configMapFiles are the files a ConfigMap source projects. A missing
// optional ConfigMap projects nothing (so its files go when it is
// deleted); a missing required one is an error.
func (k *Kubelet) configMapFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, defaultMode *int32, optional *bool) (map[string][]byte, map[string]int32, error) {
	opt := optional != nil && *optional
	cm, err := k.configMap(ctx, ns, name)
	if err != nil {
		if opt && apierrors.IsNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("configmap %q: %w", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, defaultMode, opt)
}

// secretFiles are the files a Secret source projects, as configMapFiles.
func (k *Kubelet) secretFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, defaultMode *int32, optional *bool) (map[string][]byte, map[string]int32, error) {
	opt := optional != nil && *optional
	s, err := k.secret(ctx, ns, name)
	if err != nil {
		if opt && apierrors.IsNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return keyFiles(s.Data, items, defaultMode, opt)
}

func (k *Kubelet) configMapVolume(ctx context.Context, ns, dir string, src *corev1.ConfigMapVolumeSource) error {
	files, modes, err := k.configMapFiles(ctx, ns, src.Name, src.Items, src.DefaultMode, src.Optional)
	if err != nil {
		return err
	}
	return k.writeVolume(dir, files, modes)
}

func (k *Kubelet) secretVolume(ctx context.Context, ns, dir string, src *corev1.SecretVolumeSource) error {
	files, modes, err := k.secretFiles(ctx, ns, src.SecretName, src.Items, src.DefaultMode, src.Optional)
	if err != nil {
		return err
	}
	return k.writeVolume(dir, files, modes)
}

func (k *Kubelet) downwardVolume(ctx context.Context, pod *corev1.Pod, dir string, items []corev1.DownwardAPIVolumeFile, defaultMode *int32) error {
	files, modes, err := k.downwardFiles(ctx, pod, items, defaultMode)
	if err != nil {
		return err
	}
	return k.writeVolume(dir, files, modes)
}

func (k *Kubelet) downwardFiles(ctx context.Context, pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defaultMode *int32) (map[string][]byte, map[string]int32, error) {
	mode := int32(0o644)
	if defaultMode != nil {
		mode = *defaultMode
	}
	files, modes := map[string][]byte{}, map[string]int32{}
	allocatable := k.allocatableOnce(ctx)
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.labels":
			v = formatMap(pod.Labels)
		case it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.annotations":
			v = formatMap(pod.Annotations)
		case it.FieldRef != nil:
			v, err = podField(pod, it.FieldRef.FieldPath, k.cfg.NodeIP)
		case it.ResourceFieldRef != nil:
			// Volume items always name their container.
			v, err = resourceField(pod, nil, it.ResourceFieldRef, allocatable)
		}
		if err != nil {
			return nil, nil, err
		}
		m := mode
		if it.Mode != nil {
			m = *it.Mode
		}
		files[it.Path], modes[it.Path] = []byte(v), m
	}
	return files, modes, nil
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out string
	for _, k := range keys {
		out += k + "=" + strconv.Quote(m[k]) + "\n"
	}
	return out
}

// projectedVolume combines configMap, secret and downwardAPI sources;
// service account tokens are not minted yet.
func (k *Kubelet) projectedVolume(ctx context.Context, pod *corev1.Pod, dir string, src *corev1.ProjectedVolumeSource) error {
	files, modes := map[string][]byte{}, map[string]int32{}
	for _, s := range src.Sources {
		var (
			f   map[string][]byte
			m   map[string]int32
			err error
		)
		switch {
		case s.ConfigMap != nil:
			f, m, err = k.configMapFiles(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, src.DefaultMode, s.ConfigMap.Optional)
		case s.Secret != nil:
			f, m, err = k.secretFiles(ctx, pod.Namespace, s.Secret.Name, s.Secret.Items, src.DefaultMode, s.Secret.Optional)
		case s.DownwardAPI != nil:
			f, m, err = k.downwardFiles(ctx, pod, s.DownwardAPI.Items, src.DefaultMode)
		}
		if err != nil {
			return err
		}
		for p, v := range f {
			files[p], modes[p] = v, m[p]
		}
	}
	return k.writeVolume(dir, files, modes)
}

// terminationLogFile creates the file a container writes its termination
// message to.
func (k *Kubelet) terminationLogFile(pod *corev1.Pod, container string, attempt uint32) (string, error) {
	dir := filepath.Join(k.podDir(pod.UID), "containers", container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, strconv.Itoa(int(attempt))+"-termination-log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		return "", err
	}
	f.Close()
	return path, os.Chmod(path, 0o666)
}

// terminationMessage reads a finished container's message (at most 4 KiB).
func (k *Kubelet) terminationMessage(pod *corev1.Pod, container string, attempt uint32) string {
	path := filepath.Join(k.podDir(pod.UID), "containers", container, strconv.Itoa(int(attempt))+"-termination-log")
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 4096 {
		b = b[:4096]
	}
	return string(b)
}
