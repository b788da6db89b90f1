package agent

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// ClusterConfigMap is the kube-system ConfigMap in which the server
// publishes the network settings every node needs (as kubeadm publishes
// its cluster configuration), so joined agents take them from the API
// rather than from flags that could disagree.
const ClusterConfigMap = "skiff-config"

// ClusterSettings are the cluster-wide network settings, and how often
// kubelets renew their node Lease (so a short node-monitor-grace-period
// set on the controller manager does not make healthy nodes flap).
type ClusterSettings struct {
	ClusterCIDR, ServiceCIDR, ClusterDNS, ClusterDomain string
	NodeLeaseRenewInterval                              time.Duration
}

// Data is s as ConfigMap data.
func (s ClusterSettings) Data() map[string]string {
	d := map[string]string{"clusterCIDR": s.ClusterCIDR, "serviceCIDR": s.ServiceCIDR, "clusterDNS": s.ClusterDNS, "clusterDomain": s.ClusterDomain}
	if s.NodeLeaseRenewInterval > 0 {
		d["nodeLeaseRenewInterval"] = s.NodeLeaseRenewInterval.String()
	}
	return d
}

// fillClusterSettings completes cfg's empty network and lease settings from the
// server's ConfigMap, waiting for it (a new server writes it at start).
func fillClusterSettings(ctx context.Context, client kubernetes.Interface, cfg *Config) error {
	if cfg.ClusterCIDR != "" && cfg.ClusterDNS != "" && cfg.ClusterDomain != "" && cfg.NodeLeaseRenewInterval != 0 {
		return nil
	}
	var data map[string]string
	// An older server (or one still starting) may not have written it
	// yet, and the server may be unreachable for a while: keep asking.
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, ClusterConfigMap, metav1.GetOptions{})
		if err != nil {
			if !apierrors.IsNotFound(err) {
				cfg.Log.Debug("reading cluster settings", "err", err)
			}
			return false, nil
		}
		data = cm.Data
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("cluster settings (kube-system/%s): %w", ClusterConfigMap, err)
	}
	if d, err := time.ParseDuration(data["nodeLeaseRenewInterval"]); cfg.NodeLeaseRenewInterval == 0 && err == nil && d > 0 {
		cfg.NodeLeaseRenewInterval = d
	}
	for field, key := range map[*string]string{&cfg.ClusterCIDR: "clusterCIDR", &cfg.ClusterDNS: "clusterDNS", &cfg.ClusterDomain: "clusterDomain", &cfg.ServiceCIDR: "serviceCIDR"} {
		if *field == "" {
			*field = data[key]
		}
	}
	return nil
}
