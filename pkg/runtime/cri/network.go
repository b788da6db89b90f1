package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff/skiff/pkg/network/podnet"
)

// networkState is the pod network configuration the runtime keeps on disk
// so a restarted runtime wires pods into the same range.
type networkState struct {
	PodCIDR string `json:"podCIDR"`
}

func (s *Service) networkFile() string { return filepath.Join(s.cfg.Root, "network.json") }

// ipamDir holds the runtime's address reservations.
func (s *Service) ipamDir() string { return filepath.Join(s.cfg.Root, "ipam") }

// Bridge is the pod network bridge of the runtime whose state is under
// root.
func Bridge(root string) string { return podnet.BridgeName(root) }

// IPAMDir is where the runtime under root keeps address reservations.
func IPAMDir(root string) string { return filepath.Join(root, "ipam") }

// loadNetwork sets the pod network up again from the saved
// configuration, if any.
func (s *Service) loadNetwork() error {
	b, err := os.ReadFile(s.networkFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st networkState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", s.networkFile(), err)
	}
	return s.setPodCIDR(st.PodCIDR)
}

// setPodCIDR makes the node's pod network for cidr (again).
func (s *Service) setPodCIDR(cidr string) error {
	s.netMu.Lock()
	defer s.netMu.Unlock()
	if s.net != nil && s.net.CIDR().String() == cidr {
		return nil
	}
	n, err := podnet.Setup(Bridge(s.cfg.Root), cidr, s.ipamDir())
	if err != nil {
		return err
	}
	s.net = n
	return nil
}

func (s *Service) network() *podnet.Network {
	s.netMu.Lock()
	defer s.netMu.Unlock()
	return s.net
}

// UpdateRuntimeConfig implements RuntimeServiceServer: the kubelet passes
// the node's pod range, which pods are wired into from then on.
func (s *Service) UpdateRuntimeConfig(_ context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
	}
	if err := s.setPodCIDR(cidr); err != nil {
		return nil, fmt.Errorf("pod network %s: %w", cidr, err)
	}
	b, err := json.Marshal(networkState{PodCIDR: cidr})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.networkFile(), b, 0o600); err != nil {
		return nil, err
	}
	s.cfg.Log.Info("pod network configured", "podCIDR", cidr, "bridge", Bridge(s.cfg.Root))
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// podNetwork reports whether a sandbox gets the pod network (not the
// node's).
func podNetwork(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() != runtimeapi.NamespaceMode_NODE
}
