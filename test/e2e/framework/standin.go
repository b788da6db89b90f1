package framework

import (
	"context"
	"fmt"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/typedhandler"
)

// StandInKubelets play the kubelets of simulated nodes: every pod bound to
// a node is marked Running and Ready through pods/status, as a kubelet
// would once its containers started (with a pod IP of its own from
// 10.244.0.0/16), and pods being deleted are removed
// at once (grace period 0), as a kubelet confirms a stopped pod.
type StandInKubelets struct {
	// Started counts the pods marked Running.
	Started atomic.Int64
	// ips numbers the pod IPs handed out (10.244.0.0/16, none reused).
	ips atomic.Int64
}

// RunStandInKubelets runs stand-in kubelets until ctx ends.
func RunStandInKubelets(ctx context.Context, cs kubernetes.Interface) *StandInKubelets {
	s := &StandInKubelets{}
	f := informers.NewSharedInformerFactory(cs, 0)
	q := workqueue.NewTyped[types.NamespacedName]()
	handle := func(p *corev1.Pod) {
		if p.Spec.NodeName != "" && (p.Status.Phase == "" || p.Status.Phase == corev1.PodPending || p.DeletionTimestamp != nil) {
			q.Add(types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
		}
	}
	lister := f.Core().V1().Pods().Lister()
	_, _ = f.Core().V1().Pods().Informer().AddEventHandler(typedhandler.Funcs(handle, func(_, p *corev1.Pod) { handle(p) }, nil))
	f.Start(ctx.Done())
	for range 32 {
		go func() {
			for {
				key, quit := q.Get()
				if quit {
					return
				}
				if p, err := lister.Pods(key.Namespace).Get(key.Name); err == nil {
					s.sync(ctx, cs, p)
				}
				q.Done(key)
			}
		}()
	}
	go func() {
		<-ctx.Done()
		q.ShutDown()
		f.Shutdown()
	}()
	return s
}

func (s *StandInKubelets) sync(ctx context.Context, cs kubernetes.Interface, p *corev1.Pod) {
	if p.DeletionTimestamp != nil {
		_ = cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}})
		return
	}
	p = p.DeepCopy()
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &now
	if p.Status.PodIP == "" {
		n := s.ips.Add(1)
		ip := fmt.Sprintf("10.244.%d.%d", n/250, n%250+1)
		p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	}
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	var statuses []corev1.ContainerStatus
	for _, c := range p.Spec.Containers {
		statuses = append(statuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	p.Status.ContainerStatuses = statuses
	if _, err := cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err == nil {
		s.Started.Add(1)
	}
	// On a conflict the informer brings the newer pod, which is handled
	// again.
}
