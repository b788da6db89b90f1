package service

import (
	"context"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// Allocate implements registry.Reserver. It fills in the ClusterIP, node
// ports and health check node port a service needs and has not asked for,
// and checks that those it asked for are in range and free; reservations
// the stored object (old) already holds count as free. Requested values
// that are taken or out of range are 422s shaped like upstream's.
func (st *strategy) Allocate(ctx context.Context, obj, old runtime.Object, exists func(string) (bool, error)) error {
	svc := obj.(*corev1.Service)
	held := sets.New[string]()
	if old != nil {
		held.Insert(st.Reservations(old)...)
	}
	errs, err := st.allocateClusterIP(ctx, svc, held, exists)
	if err == nil && len(errs) == 0 {
		errs, err = st.allocateNodePorts(ctx, svc, held, exists)
	}
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, errs)
	}
	return nil
}

// family is the IP family of the service range.
func (st *strategy) family() corev1.IPFamily {
	if st.ips.CIDR().IP.To4() != nil {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

func (st *strategy) allocateClusterIP(ctx context.Context, svc *corev1.Service, held sets.Set[string], exists func(string) (bool, error)) (field.ErrorList, error) {
	if !needsClusterIP(svc) {
		return nil, nil
	}
	s := &svc.Spec
	family := st.family()
	if p := s.IPFamilyPolicy; p != nil && *p == corev1.IPFamilyPolicyRequireDualStack {
		return field.ErrorList{field.Invalid(specPath.Child("ipFamilyPolicy"), *p, "this cluster is not configured for dual-stack services")}, nil
	}
	var errs field.ErrorList
	for i, f := range s.IPFamilies {
		if f != family {
			errs = append(errs, field.Invalid(specPath.Child("ipFamilies").Index(i), f, "not configured on this cluster"))
		}
	}
	if len(errs) > 0 {
		return errs, nil
	}
	if s.IPFamilyPolicy == nil {
		s.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
	}
	if len(s.IPFamilies) == 0 {
		s.IPFamilies = []corev1.IPFamily{family}
	}
	switch {
	case isHeadless(svc):
	case s.ClusterIP == "":
		ip, err := st.ips.Pick(ctx, exists)
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: %w", err))
		}
		s.ClusterIP = ip.String()
		s.ClusterIPs = []string{s.ClusterIP}
	case !held.Has(st.ips.Key(s.ClusterIP)):
		path := clusterIPsPath.Index(0)
		if !st.ips.Contains(net.ParseIP(s.ClusterIP)) {
			return field.ErrorList{field.Invalid(path, s.ClusterIP, fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", s.ClusterIP, s.ClusterIP, st.ips.CIDR()))}, nil
		}
		if taken, err := exists(st.ips.Key(s.ClusterIP)); err != nil {
			return nil, err
		} else if taken {
			return field.ErrorList{field.Invalid(path, s.ClusterIP, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", s.ClusterIP))}, nil
		}
	}
	return nil, nil
}

func (st *strategy) allocateNodePorts(ctx context.Context, svc *corev1.Service, held sets.Set[string], exists func(string) (bool, error)) (field.ErrorList, error) {
	if !hasNodePorts(svc) {
		return nil, nil
	}
	s := &svc.Spec
	// check reports why a requested port cannot be had, or "".
	check := func(port int32, inUse map[int]bool) (string, error) {
		key := st.ports.Key(int(port))
		switch {
		case held.Has(key):
			return "", nil
		case inUse[int(port)]:
			return "provided port is already allocated", nil
		case !st.ports.Contains(int(port)):
			return fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %s", st.ports), nil
		}
		taken, err := exists(key)
		if err != nil || !taken {
			return "", err
		}
		return "provided port is already allocated", nil
	}
	var errs field.ErrorList
	inUse := map[int]bool{}
	// A service port number served over several protocols shares one node
	// port, as upstream allocates it.
	byPort := map[int32]int32{}
	for i := range s.Ports {
		p := &s.Ports[i]
		if p.NodePort == 0 {
			continue
		}
		if !inUse[int(p.NodePort)] {
			msg, err := check(p.NodePort, nil)
			if err != nil {
				return nil, err
			}
			if msg != "" {
				errs = append(errs, field.Invalid(portsPath.Index(i).Child("nodePort"), p.NodePort, msg))
			}
		}
		inUse[int(p.NodePort)] = true
		if byPort[p.Port] == 0 {
			byPort[p.Port] = p.NodePort
		}
	}
	if len(errs) > 0 {
		return errs, nil
	}
	if needsNodePort(svc) {
		for i := range s.Ports {
			p := &s.Ports[i]
			if p.NodePort != 0 {
				continue
			}
			if np := byPort[p.Port]; np != 0 {
				p.NodePort = np
				continue
			}
			port, err := st.ports.Pick(ctx, exists, inUse)
			if err != nil {
				return nil, apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %w", err))
			}
			p.NodePort = int32(port)
			inUse[port] = true
			byPort[p.Port] = p.NodePort
		}
	}
	if !needsHealthCheckNodePort(svc) {
		return nil, nil
	}
	if s.HealthCheckNodePort == 0 {
		port, err := st.ports.Pick(ctx, exists, inUse)
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %w", err))
		}
		s.HealthCheckNodePort = int32(port)
		return nil, nil
	}
	msg, err := check(s.HealthCheckNodePort, inUse)
	if err != nil || msg == "" {
		return nil, err
	}
	return field.ErrorList{field.Invalid(specPath.Child("healthCheckNodePort"), s.HealthCheckNodePort,
		fmt.Sprintf("failed to allocate requested HealthCheck NodePort %d: %s", s.HealthCheckNodePort, msg))}, nil
}

// Reservations implements registry.Reserver: the reservation keys of the
// ClusterIP, node ports and health check node port the service holds.
func (st *strategy) Reservations(obj runtime.Object) []string {
	svc := obj.(*corev1.Service)
	s := &svc.Spec
	var keys []string
	if needsClusterIP(svc) && s.ClusterIP != "" && s.ClusterIP != corev1.ClusterIPNone {
		keys = append(keys, st.ips.Key(s.ClusterIP))
	}
	seen := map[int32]bool{}
	add := func(port int32) {
		if port != 0 && !seen[port] {
			seen[port] = true
			keys = append(keys, st.ports.Key(int(port)))
		}
	}
	if hasNodePorts(svc) {
		for _, p := range s.Ports {
			add(p.NodePort)
		}
	}
	if needsHealthCheckNodePort(svc) {
		add(s.HealthCheckNodePort)
	}
	return keys
}
