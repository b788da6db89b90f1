package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI labels and annotations the kubelet sets, as upstream's kubelet does,
// so containers can be matched to pods after a restart.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	annotationRestarts = "io.kubernetes.container.restartCount"
	annotationTermPath = "io.kubernetes.container.terminationMessagePath"
)

// cpu share and quota arithmetic, as upstream converts milli-CPUs.
const (
	minShares     = 2
	sharesPerCPU  = 1024
	quotaPeriodUs = 100000
	minQuotaUs    = 1000
)

func podLabels(p *corev1.Pod) map[string]string {
	return map[string]string{labelPodName: p.Name, labelPodNamespace: p.Namespace, labelPodUID: string(p.UID)}
}

// envFor resolves a container's environment: envFrom sources first (each in
// key order), then env entries (later ones win), with $(VAR)
// references expanded.
func (k *Kubelet) envFor(ctx context.Context, p *corev1.Pod, c *corev1.Container) ([]*runtimeapi.KeyValue, error) {
	var keys []string
	vals := map[string]string{}
	set := func(key, v string) {
		if _, ok := vals[key]; !ok {
			keys = append(keys, key)
		}
		vals[key] = v
	}
	for _, key := range k.serviceEnvKeys(p) {
		set(key.name, key.value)
	}
	for _, from := range c.EnvFrom {
		data, optional, err := k.envSource(ctx, p.Namespace, from)
		if err != nil {
			if optional {
				continue
			}
			return nil, err
		}
		for _, name := range slices.Sorted(maps.Keys(data)) {
			v := data[name]
			// Any printable ASCII name but '=' is fine (upstream relaxed
			// the C-identifier rule in 1.34), so "data-1" and "1-data"
			// keys are passed on.
			key := from.Prefix + name
			if len(validation.IsRelaxedEnvVarName(key)) == 0 {
				set(key, v)
			}
		}
	}
	allocatable := k.allocatableOnce(ctx)
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			var err error
			if v, err = k.envValueFrom(ctx, p, c, e.ValueFrom, allocatable); err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		} else {
			v = expand(v, vals)
		}
		set(e.Name, v)
	}
	out := make([]*runtimeapi.KeyValue, 0, len(keys))
	for _, key := range keys {
		out = append(out, &runtimeapi.KeyValue{Key: key, Value: []byte(vals[key])})
	}
	return out, nil
}

// expand replaces $(VAR) with known values; $$ escapes, unknown references
// stay as written, as upstream's expansion does.
func expand(s string, vals map[string]string) string {
	return expandWith(s, func(name string) (string, bool) {
		v, ok := vals[name]
		return v, ok
	})
}

// expandWith expands $(VAR) references with lookup; a reference lookup
// does not know stays as written.
func expandWith(s string, lookup func(name string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteByte(s[i])
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// expandSubPath expands a volume mount's subPathExpr from the container's
// env; a reference to a variable that is unset or empty is an error, as
// upstream's ExpandContainerVolumeMounts makes it.
func expandSubPath(expr string, vals map[string]string) (string, error) {
	missing := sets.New[string]()
	out := expandWith(expr, func(name string) (string, bool) {
		v := vals[name]
		if v == "" {
			missing.Insert(name)
		}
		return v, true
	})
	if missing.Len() > 0 {
		return "", fmt.Errorf("missing value for %s", strings.Join(sets.List(missing), ", "))
	}
	return out, nil
}

// subPathHost is the host path of subPath inside volume dir, created (with
// the volume's mode) when missing. An absolute subPath, one with a ".."
// element, or one that resolves outside the volume through a symlink is an
// error, as upstream's makeMounts has it.
func subPathHost(dir, subPath string) (string, error) {
	if filepath.IsAbs(subPath) {
		return "", fmt.Errorf("error SubPath `%s` must not be an absolute path", subPath)
	}
	if slices.Contains(strings.Split(filepath.ToSlash(subPath), "/"), "..") {
		return "", fmt.Errorf("unable to provision SubPath `%s`: must not contain '..'", subPath)
	}
	host := filepath.Join(dir, subPath)
	if _, err := os.Lstat(host); errors.Is(err, fs.ErrNotExist) {
		mode := fs.FileMode(0o755)
		if fi, err := os.Stat(dir); err == nil {
			mode = fi.Mode().Perm()
		}
		if err := os.MkdirAll(host, mode); err != nil {
			return "", fmt.Errorf("unable to provision SubPath `%s`: %w", subPath, err)
		}
	} else if err != nil {
		return "", fmt.Errorf("unable to provision SubPath `%s`: %w", subPath, err)
	}
	base, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("unable to provision SubPath `%s`: %w", subPath, err)
	}
	real, err := filepath.EvalSymlinks(host)
	if err != nil {
		return "", fmt.Errorf("unable to provision SubPath `%s`: %w", subPath, err)
	}
	if rel, err := filepath.Rel(base, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("subpath %q not within volume path %q", real, base)
	}
	// The resolved path: a subPath into a configMap, secret or projected
	// volume binds the file of the current snapshot (..data/...), which
	// later updates replace but do not change, as upstream.
	return real, nil
}

func (k *Kubelet) envSource(ctx context.Context, ns string, from corev1.EnvFromSource) (map[string]string, bool, error) {
	switch {
	case from.ConfigMapRef != nil:
		cm, err := k.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
		if err != nil {
			return nil, from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional, fmt.Errorf("configmap %q: %w", from.ConfigMapRef.Name, err)
		}
		return cm.Data, false, nil
	case from.SecretRef != nil:
		s, err := k.cfg.Client.CoreV1().Secrets(ns).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			return nil, from.SecretRef.Optional != nil && *from.SecretRef.Optional, fmt.Errorf("secret %q: %w", from.SecretRef.Name, err)
		}
		out := map[string]string{}
		for name, v := range s.Data {
			out[name] = string(v)
		}
		return out, false, nil
	}
	return nil, false, nil
}

func (k *Kubelet) envValueFrom(ctx context.Context, p *corev1.Pod, c *corev1.Container, from *corev1.EnvVarSource, allocatable allocatableFunc) (string, error) {
	switch {
	case from.FieldRef != nil:
		return podField(p, from.FieldRef.FieldPath, k.cfg.NodeIP)
	case from.ResourceFieldRef != nil:
		return resourceField(p, c, from.ResourceFieldRef, allocatable)
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := k.cfg.Client.CoreV1().ConfigMaps(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if ref.Optional != nil && *ref.Optional {
				return "", nil
			}
			return "", fmt.Errorf("configmap %q: %w", ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok && !(ref.Optional != nil && *ref.Optional) {
			return "", fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, p.Namespace, ref.Name)
		}
		return v, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s, err := k.cfg.Client.CoreV1().Secrets(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if ref.Optional != nil && *ref.Optional {
				return "", nil
			}
			return "", fmt.Errorf("secret %q: %w", ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok && !(ref.Optional != nil && *ref.Optional) {
			return "", fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, p.Namespace, ref.Name)
		}
		return string(v), nil
	}
	return "", nil
}

// podField resolves a downward-API field path.
func podField(p *corev1.Pod, path, hostIP string) (string, error) {
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	case "status.podIP", "status.podIPs":
		return p.Status.PodIP, nil
	}
	for _, prefix := range []string{"metadata.labels['", "metadata.annotations['"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			key := strings.TrimSuffix(rest, "']")
			if prefix == "metadata.labels['" {
				return p.Labels[key], nil
			}
			return p.Annotations[key], nil
		}
	}
	return "", fmt.Errorf("unsupported field path %q", path)
}

// linuxResources converts a container's requests and limits to CRI cgroup
// settings.
func linuxResources(c *corev1.Container) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{CpuShares: minShares}
	if req, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		r.CpuShares = max(req.MilliValue()*sharesPerCPU/1000, minShares)
	} else if lim, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		r.CpuShares = max(lim.MilliValue()*sharesPerCPU/1000, minShares)
	}
	if lim, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		r.CpuPeriod = quotaPeriodUs
		r.CpuQuota = max(lim.MilliValue()*quotaPeriodUs/1000, minQuotaUs)
	}
	if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		r.MemoryLimitInBytes = lim.Value()
	}
	return r
}

// securityContext merges the pod's and the container's security contexts.
func securityContext(p *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerSecurityContext {
	out := &runtimeapi.LinuxContainerSecurityContext{}
	if ps := p.Spec.SecurityContext; ps != nil {
		if ps.RunAsUser != nil {
			out.RunAsUser = &runtimeapi.Int64Value{Value: *ps.RunAsUser}
		}
		if ps.RunAsGroup != nil {
			out.RunAsGroup = &runtimeapi.Int64Value{Value: *ps.RunAsGroup}
		}
		out.SupplementalGroups = ps.SupplementalGroups
		if ps.FSGroup != nil {
			out.SupplementalGroups = append(out.SupplementalGroups, *ps.FSGroup)
		}
	}
	if cs := c.SecurityContext; cs != nil {
		if cs.RunAsUser != nil {
			out.RunAsUser = &runtimeapi.Int64Value{Value: *cs.RunAsUser}
		}
		if cs.RunAsGroup != nil {
			out.RunAsGroup = &runtimeapi.Int64Value{Value: *cs.RunAsGroup}
		}
		out.Privileged = cs.Privileged != nil && *cs.Privileged
		// As upstream's kubelet: no_new_privs only when escalation is
		// explicitly disallowed; unset allows it.
		out.NoNewPrivs = cs.AllowPrivilegeEscalation != nil && !*cs.AllowPrivilegeEscalation
		out.ReadonlyRootfs = cs.ReadOnlyRootFilesystem != nil && *cs.ReadOnlyRootFilesystem
		if caps := cs.Capabilities; caps != nil {
			out.Capabilities = &runtimeapi.Capability{}
			for _, a := range caps.Add {
				out.Capabilities.AddCapabilities = append(out.Capabilities.AddCapabilities, string(a))
			}
			for _, d := range caps.Drop {
				out.Capabilities.DropCapabilities = append(out.Capabilities.DropCapabilities, string(d))
			}
		}
	}
	return out
}

// containerConfig builds the CRI config of container c of pod p, attempt
// number attempt (its restart count); etcHosts is the host path of the
// pod's managed /etc/hosts ("" for none).
func (k *Kubelet) containerConfig(ctx context.Context, p *corev1.Pod, c *corev1.Container, attempt uint32, volumes map[string]string, etcHosts string) (*runtimeapi.ContainerConfig, error) {
	env, err := k.envFor(ctx, p, c)
	if err != nil {
		return nil, err
	}
	vals := map[string]string{}
	for _, kv := range env {
		vals[kv.Key] = string(kv.Value)
	}
	var command, args []string
	for _, s := range c.Command {
		command = append(command, expand(s, vals))
	}
	for _, s := range c.Args {
		args = append(args, expand(s, vals))
	}
	mounts, err := k.containerMounts(p, c, attempt, volumes, vals, etcHosts)
	if err != nil {
		return nil, err
	}
	labels := podLabels(p)
	labels[labelContainerName] = c.Name
	return &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:       &runtimeapi.ImageSpec{Image: c.Image},
		Command:     command,
		Args:        args,
		WorkingDir:  c.WorkingDir,
		Envs:        env,
		Mounts:      mounts,
		Labels:      labels,
		Annotations: map[string]string{annotationRestarts: strconv.Itoa(int(attempt)), annotationTermPath: c.TerminationMessagePath},
		LogPath:     filepath.Join(c.Name, strconv.Itoa(int(attempt))+".log"),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       linuxResources(c),
			SecurityContext: securityContext(p, c),
		},
	}, nil
}

// containerMounts are the container's volume mounts, its termination
// message file and the pod's /etc/hosts file etcHosts (unless "" or the
// container mounts a volume there); env holds the container's environment
// for subPathExpr.
func (k *Kubelet) containerMounts(p *corev1.Pod, c *corev1.Container, attempt uint32, volumes map[string]string, env map[string]string, etcHosts string) ([]*runtimeapi.Mount, error) {
	var out []*runtimeapi.Mount
	seen := sets.New[string]()
	for _, m := range c.VolumeMounts {
		host, ok := volumes[m.Name]
		if !ok {
			return nil, fmt.Errorf("volume %q is not set up", m.Name)
		}
		subPath := m.SubPath
		if m.SubPathExpr != "" {
			var err error
			if subPath, err = expandSubPath(m.SubPathExpr, env); err != nil {
				return nil, fmt.Errorf("volume mount %s: %w", m.MountPath, err)
			}
		}
		if subPath != "" {
			var err error
			if host, err = subPathHost(host, subPath); err != nil {
				return nil, err
			}
		}
		prop := runtimeapi.MountPropagation_PROPAGATION_PRIVATE
		if m.MountPropagation != nil {
			switch *m.MountPropagation {
			case corev1.MountPropagationHostToContainer:
				prop = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case corev1.MountPropagationBidirectional:
				prop = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: m.MountPath, HostPath: host, Readonly: m.ReadOnly, Propagation: prop})
		seen.Insert(m.MountPath)
	}
	if path := c.TerminationMessagePath; path != "" && !seen.Has(path) {
		host, err := k.terminationLogFile(p, c.Name, attempt)
		if err != nil {
			return nil, err
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: path, HostPath: host})
	}
	if etcHosts != "" && !mountsEtcHosts(c) {
		out = append(out, &runtimeapi.Mount{ContainerPath: etcHostsPath, HostPath: etcHosts})
	}
	return out, nil
}
