package plugins

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

func hostPortPod(t *testing.T, uid, ip string, port int32, proto corev1.Protocol) *framework.PodInfo {
	t.Helper()
	pi, err := framework.NewPodInfo(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: uid, UID: types.UID(uid)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
			{ContainerPort: 8080, HostPort: port, HostIP: ip, Protocol: proto},
		}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pi
}

// TestNodePortsFilter follows upstream's NodePorts plugin: the same port
// and protocol conflict when either side binds 0.0.0.0 (or no hostIP) or
// both bind the same address; other addresses or protocols do not.
func TestNodePortsFilter(t *testing.T) {
	type port struct {
		ip    string
		port  int32
		proto corev1.Protocol
	}
	for _, tc := range []struct {
		name     string
		existing []port
		pod      port
		conflict bool
	}{
		{"free node", nil, port{"", 8000, corev1.ProtocolTCP}, false},
		{"same ip, port and protocol", []port{{"127.0.0.1", 8000, "TCP"}}, port{"127.0.0.1", 8000, "TCP"}, true},
		{"unset protocol is TCP", []port{{"127.0.0.1", 8000, ""}}, port{"127.0.0.1", 8000, "TCP"}, true},
		{"different host IP", []port{{"127.0.0.1", 54323, "TCP"}}, port{"10.0.0.5", 54323, "TCP"}, false},
		{"different protocol", []port{{"127.0.0.1", 54323, "TCP"}, {"10.0.0.5", 54323, "TCP"}}, port{"10.0.0.5", 54323, "UDP"}, false},
		{"different port", []port{{"", 8000, "TCP"}}, port{"", 8001, "TCP"}, false},
		{"pod binds 0.0.0.0", []port{{"127.0.0.1", 8000, "TCP"}}, port{"0.0.0.0", 8000, "TCP"}, true},
		{"pod binds every address (unset)", []port{{"10.0.0.5", 8000, "TCP"}}, port{"", 8000, "TCP"}, true},
		{"node holds 0.0.0.0", []port{{"0.0.0.0", 8000, "TCP"}}, port{"127.0.0.1", 8000, "TCP"}, true},
		{"0.0.0.0 of another protocol", []port{{"0.0.0.0", 8000, "UDP"}}, port{"127.0.0.1", 8000, "TCP"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ni := framework.NewNodeInfo(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}})
			for i, p := range tc.existing {
				ni.AddPod(hostPortPod(t, fmt.Sprint("existing", i), p.ip, p.port, p.proto))
			}
			st := NodePorts{}.Filter(context.Background(), framework.NewCycleState(), hostPortPod(t, "new", tc.pod.ip, tc.pod.port, tc.pod.proto), ni)
			if got := !st.IsSuccess(); got != tc.conflict {
				t.Errorf("conflict = %v (%v), want %v", got, st, tc.conflict)
			}
		})
	}
}
