package kubelet

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// configurePodNetwork hands the node's pod range (spec.podCIDR, given by
// the node IPAM controller) to the runtime, which wires pods into it. It
// waits up to PodCIDRWait for the range, so the first pods already get
// addresses, then keeps looking in the background.
func (k *Kubelet) configurePodNetwork(ctx context.Context) {
	try := func() bool {
		n, err := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if err != nil || n.Spec.PodCIDR == "" {
			return false
		}
		err = k.cfg.Runtime.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: n.Spec.PodCIDR}})
		if err != nil {
			k.cfg.Log.Warn("configure the pod network", "podCIDR", n.Spec.PodCIDR, "err", err)
			return false
		}
		return true
	}
	deadline := k.cfg.Clock.Now().Add(k.cfg.PodCIDRWait)
	for !try() {
		if ctx.Err() != nil {
			return
		}
		if k.cfg.Clock.Now().After(deadline) {
			k.cfg.Log.Warn("no pod CIDR on the node yet: pods start without a pod network until it comes", "node", k.cfg.NodeName)
			go func() {
				for ctx.Err() == nil && !try() {
					select {
					case <-ctx.Done():
					case <-k.cfg.Clock.After(2 * time.Second):
					}
				}
			}()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-k.cfg.Clock.After(100 * time.Millisecond):
		}
	}
}
