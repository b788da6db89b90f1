package scheduler

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Plugins whose rejections other pods' placement can lift.
var podPlacementPlugins = []string{"InterPodAffinity", "PodTopologySpread"}

// addHandlers feeds the cache and the queue from the informers, and moves
// unschedulable pods when something changes that could make them fit.
func (s *Scheduler) addHandlers(f informers.SharedInformerFactory) error {
	add := func(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) error {
		reg, err := inf.AddEventHandler(h)
		if err == nil {
			s.handlersSynced = append(s.handlersSynced, reg.HasSynced)
		}
		return err
	}
	if err := add(f.Core().V1().Pods().Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onPod(nil, obj.(*corev1.Pod)) },
		UpdateFunc: func(old, obj any) { s.onPod(old.(*corev1.Pod), obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				s.onPodDelete(pod)
			}
		},
	}); err != nil {
		return err
	}
	if err := add(f.Core().V1().Nodes().Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			s.cache.AddOrUpdateNode(obj.(*corev1.Node))
			s.queue.MoveAll()
		},
		UpdateFunc: func(old, obj any) {
			o, n := old.(*corev1.Node), obj.(*corev1.Node)
			s.cache.AddOrUpdateNode(n)
			if nodeSchedulingChanged(o, n) {
				s.queue.MoveAll()
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				s.cache.RemoveNode(n.Name)
			}
		},
	}); err != nil {
		return err
	}
	if err := add(f.Core().V1().Namespaces().Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.cache.SetNamespace(obj.(*corev1.Namespace), false) },
		UpdateFunc: func(_, obj any) { s.cache.SetNamespace(obj.(*corev1.Namespace), false) },
		DeleteFunc: func(obj any) {
			if ns, ok := obj.(*corev1.Namespace); ok {
				s.cache.SetNamespace(ns, true)
			}
		},
	}); err != nil {
		return err
	}
	volumeChange := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.queue.MoveRejectedBy("VolumeBinding") },
		UpdateFunc: func(any, any) { s.queue.MoveRejectedBy("VolumeBinding") },
	}
	if err := add(f.Core().V1().PersistentVolumeClaims().Informer(), volumeChange); err != nil {
		return err
	}
	if err := add(f.Core().V1().PersistentVolumes().Informer(), volumeChange); err != nil {
		return err
	}
	if err := add(f.Storage().V1().StorageClasses().Informer(), volumeChange); err != nil {
		return err
	}
	// Listers only (default spreading).
	f.Core().V1().Services().Informer()
	f.Core().V1().ReplicationControllers().Informer()
	f.Apps().V1().ReplicaSets().Informer()
	f.Apps().V1().StatefulSets().Informer()
	return nil
}

func (s *Scheduler) responsibleFor(pod *corev1.Pod) bool {
	return pod.Spec.SchedulerName == s.cfg.SchedulerName
}

func (s *Scheduler) onPod(old, pod *corev1.Pod) {
	if pod.Spec.NodeName != "" {
		s.queue.Delete(pod.UID)
		if err := s.cache.AddOrUpdatePod(pod); err != nil {
			s.cfg.Log.Warn("scheduler cache", "err", err)
		}
		// A pod placed (or relabelled) may satisfy others' affinity or
		// spreading; a finished one frees resources.
		switch {
		case old == nil || old.Spec.NodeName == "":
			s.queue.MoveRejectedBy(podPlacementPlugins...)
		case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
			if old.Status.Phase != pod.Status.Phase {
				s.queue.MoveAll()
			}
		case !reflect.DeepEqual(old.Labels, pod.Labels):
			s.queue.MoveRejectedBy(podPlacementPlugins...)
		}
		return
	}
	if !s.responsibleFor(pod) || pod.DeletionTimestamp != nil {
		s.queue.Delete(pod.UID)
		return
	}
	s.queue.Update(pod)
}

func (s *Scheduler) onPodDelete(pod *corev1.Pod) {
	s.queue.Delete(pod.UID)
	if pod.Spec.NodeName != "" || s.cache.IsAssumedOrBound(pod.UID) {
		s.cache.RemovePod(pod.UID)
		s.queue.MoveAll()
	}
}

// nodeSchedulingChanged: heartbeats do not requeue pods; changes to what
// the filters look at do.
func nodeSchedulingChanged(o, n *corev1.Node) bool {
	if o.Spec.Unschedulable != n.Spec.Unschedulable || !reflect.DeepEqual(o.Labels, n.Labels) ||
		!reflect.DeepEqual(o.Spec.Taints, n.Spec.Taints) || !reflect.DeepEqual(o.Status.Allocatable, n.Status.Allocatable) {
		return true
	}
	return readyStatus(o) != readyStatus(n)
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// defaultSelector finds the pods a pod without topology spread constraints
// spreads among: those selected by the Services selecting it and by its
// controller (ReplicationController, ReplicaSet, StatefulSet), as
// upstream's default constraints do.
type defaultSelector struct {
	services corelisters.ServiceLister
	rcs      corelisters.ReplicationControllerLister
	rss      appslisters.ReplicaSetLister
	sts      appslisters.StatefulSetLister
}

func (d *defaultSelector) selector(pod *corev1.Pod) labels.Selector {
	sel := labels.NewSelector()
	found := false
	if svcs, err := d.services.Services(pod.Namespace).List(labels.Everything()); err == nil {
		for _, svc := range svcs {
			if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
				reqs, _ := labels.SelectorFromSet(svc.Spec.Selector).Requirements()
				sel = sel.Add(reqs...)
				found = true
			}
		}
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		var ls *metav1.LabelSelector
		switch ref.Kind {
		case "ReplicationController":
			if rc, err := d.rcs.ReplicationControllers(pod.Namespace).Get(ref.Name); err == nil && len(rc.Spec.Selector) > 0 {
				ls = &metav1.LabelSelector{MatchLabels: rc.Spec.Selector}
			}
		case "ReplicaSet":
			if rs, err := d.rss.ReplicaSets(pod.Namespace).Get(ref.Name); err == nil {
				ls = rs.Spec.Selector
			}
		case "StatefulSet":
			if st, err := d.sts.StatefulSets(pod.Namespace).Get(ref.Name); err == nil {
				ls = st.Spec.Selector
			}
		}
		if ls != nil {
			if s, err := metav1.LabelSelectorAsSelector(ls); err == nil {
				reqs, _ := s.Requirements()
				sel = sel.Add(reqs...)
				found = true
			}
		}
	}
	if !found {
		return nil
	}
	return sel
}
