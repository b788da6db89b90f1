package cri

import (
	"context"
	"strings"

	"github.com/skiff/skiff/pkg/network/hostport"
)

// syncHostPorts makes the node publish the host ports of every ready
// sandbox on the pod network (the portmap plugin's job under containerd).
// The table is made on first need, so nodes whose pods use no host port
// never touch nftables for it.
func (s *Service) syncHostPorts(ctx context.Context) error {
	s.mu.Lock()
	var mappings []hostport.Mapping
	for _, sb := range s.sandboxes {
		if sb.State != sandboxReady || sb.IP == "" {
			continue
		}
		for _, pm := range sb.config.GetPortMappings() {
			mappings = append(mappings, hostport.Mapping{
				HostIP: pm.GetHostIp(), HostPort: pm.GetHostPort(), Protocol: strings.ToLower(pm.GetProtocol().String()),
				PodIP: sb.IP, ContainerPort: pm.GetContainerPort(),
			})
		}
	}
	s.mu.Unlock()
	s.hostPortsMu.Lock()
	defer s.hostPortsMu.Unlock()
	if s.hostPorts == nil {
		if len(mappings) == 0 {
			return nil
		}
		t, err := hostport.New(Bridge(s.cfg.Root))
		if err != nil {
			return err
		}
		s.hostPorts = t
	}
	return s.hostPorts.Sync(ctx, mappings)
}
