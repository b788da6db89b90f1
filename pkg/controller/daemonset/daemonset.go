// Package daemonset runs one pod of each DaemonSet on every eligible node,
// as upstream's controller does: a node is eligible when it matches the
// pod template's nodeSelector and required node affinity and its taints
// are tolerated (the DaemonSet tolerations upstream adds are added too).
// Pods are created for their node (required node affinity on
// metadata.name, which the scheduler honours), removed from nodes that
// stop being eligible, and replaced when deleted. Status reports
// desired/current/ready/available/misscheduled/updated numbers.
// Templates are kept as ControllerRevisions (so `kubectl rollout history`
// and `undo` work); changes roll out (RollingUpdate: maxUnavailable, or
// maxSurge, which starts the new pod beside the old and removes the old
// once the new is Ready) or wait for pods to be deleted (OnDelete).
package daemonset

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"

	"github.com/skiff/skiff/pkg/controller/recorder"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/claim"
	"github.com/skiff/skiff/pkg/controller/expectations"
	"github.com/skiff/skiff/pkg/controller/history"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// TemplateHashLabel marks a DaemonSet pod with the hash of the revision
// it came from (upstream's controller-revision-hash).
const TemplateHashLabel = appsv1.DefaultDaemonSetUniqueLabelKey

var gvk = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Controller runs DaemonSets.
type Controller struct {
	client    kubernetes.Interface
	sets      appslisters.DaemonSetLister
	nodes     corelisters.NodeLister
	pods      corelisters.PodLister
	revisions appslisters.ControllerRevisionLister
	history   history.Store
	queue     workqueue.TypedRateLimitingInterface[string]
	exp       *expectations.Expectations
	recorder  record.EventRecorder
	log       *slog.Logger
}

// New returns a Controller fed by f's informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.Clock, log *slog.Logger) (*Controller, error) {
	c := &Controller{client: client, sets: f.Apps().V1().DaemonSets().Lister(), nodes: f.Core().V1().Nodes().Lister(),
		pods: f.Core().V1().Pods().Lister(), revisions: f.Apps().V1().ControllerRevisions().Lister(),
		history: history.Store{Client: client}, log: log, exp: expectations.New(clk),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "daemonset"})}
	if _, err := f.Apps().V1().DaemonSets().Informer().AddEventHandler(typedhandler.Keys(c.queue.Add)); err != nil {
		return nil, err
	}
	all := func(any) { c.enqueueAll() }
	if _, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: all, DeleteFunc: all,
		UpdateFunc: func(old, obj any) {
			o, n := old.(*corev1.Node), obj.(*corev1.Node)
			if !labels.Equals(o.Labels, n.Labels) || !equalTaints(o.Spec.Taints, n.Spec.Taints) || o.Spec.Unschedulable != n.Spec.Unschedulable {
				c.enqueueAll()
			}
		},
	}); err != nil {
		return nil, err
	}
	onPod := func(p *corev1.Pod, created, deleted bool) {
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.Kind != "DaemonSet" {
			return
		}
		key := p.Namespace + "/" + ref.Name
		switch {
		case deleted || p.DeletionTimestamp != nil:
			c.exp.ObservedDelete(key, p.UID)
		case created:
			c.exp.ObservedCreate(key)
		}
		c.queue.Add(key)
	}
	_, err := f.Core().V1().Pods().Informer().AddEventHandler(typedhandler.Funcs(
		func(p *corev1.Pod) { onPod(p, true, false) },
		func(_, p *corev1.Pod) { onPod(p, false, false) },
		func(p *corev1.Pod) { onPod(p, false, true) },
	))
	return c, err
}

func equalTaints(a, b []corev1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].MatchTaint(&b[i]) || a[i].Value != b[i].Value {
			return false
		}
	}
	return true
}

func (c *Controller) enqueueAll() {
	sets, _ := c.sets.List(labels.Everything())
	for _, ds := range sets {
		c.queue.Add(ds.Namespace + "/" + ds.Name)
	}
}

// Run runs n workers until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	rec, stop := recorder.Start(ctx, c.client, "daemonset-controller")
	defer stop()
	c.recorder = rec
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

// revisions returns the DaemonSet's update revision (that of its
// template, made or renumbered to be the newest) and all its revisions,
// oldest first, adopting matching orphans.
func (c *Controller) revisionsOf(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector, collisions *int32) (*appsv1.ControllerRevision, []*appsv1.ControllerRevision, error) {
	all, err := c.revisions.ControllerRevisions(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	revs, err := claim.Objects(ctx, claim.Owner{Meta: ds, Kind: gvk, Selector: sel}, all, c.patchRevision, nil)
	if err != nil {
		return nil, nil, err
	}
	revs = append([]*appsv1.ControllerRevision(nil), revs...)
	history.Sort(revs)
	update, err := c.history.ForTemplate(ctx, ds, gvk, &ds.Spec.Template, revs, collisions)
	if err == nil && !slices.ContainsFunc(revs, func(r *appsv1.ControllerRevision) bool { return r.Name == update.Name }) {
		revs = append(revs, update)
	}
	return update, revs, err
}

func (c *Controller) patchRevision(ctx context.Context, r *appsv1.ControllerRevision, patch []byte) error {
	_, err := c.client.AppsV1().ControllerRevisions(r.Namespace).Patch(ctx, r.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// daemonTolerations are the tolerations upstream adds to DaemonSet pods so
// that they run on not-ready, unreachable, pressured and cordoned nodes.
var daemonTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

// eligible reports whether the DaemonSet's pod should run on node, and
// whether a pod already there may keep running (an untolerated NoSchedule
// taint keeps new pods off but does not evict, as upstream).
func eligible(ds *appsv1.DaemonSet, node *corev1.Node) (shouldRun, mayContinue bool) {
	pod := &corev1.Pod{Spec: ds.Spec.Template.Spec}
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !ok {
		return false, false
	}
	tols := append(append([]corev1.Toleration{}, ds.Spec.Template.Spec.Tolerations...), daemonTolerations...)
	shouldRun, mayContinue = true, true
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		ok := false
		for i := range tols {
			if tols[i].ToleratesTaint(klog.Background(), &t, false) {
				ok = true
				break
			}
		}
		if !ok {
			shouldRun = false
			if t.Effect == corev1.TaintEffectNoExecute {
				mayContinue = false
			}
		}
	}
	return shouldRun, mayContinue
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	ds, err := c.sets.DaemonSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return err
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	all, err := c.pods.Pods(ns).List(sel)
	if err != nil {
		return err
	}
	byNode := map[string][]*corev1.Pod{}
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != ds.UID {
			continue
		}
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		byNode[podNode(p)] = append(byNode[podNode(p)], p)
	}
	collisions := ptr.Deref(ds.Status.CollisionCount, 0)
	update, revs, err := c.revisionsOf(ctx, ds, sel, &collisions)
	if err != nil {
		return err
	}
	hash := update.Labels[appsv1.ControllerRevisionHashLabelKey]
	surge := surges(ds)
	var st appsv1.DaemonSetStatus
	var create []string
	var remove []*corev1.Pod
	var outdated []*corev1.Pod
	surging := 0
	for _, n := range nodes {
		pods := byNode[n.Name]
		delete(byNode, n.Name)
		shouldRun, mayContinue := eligible(ds, n)
		if !shouldRun {
			if len(pods) > 0 && !mayContinue {
				st.NumberMisscheduled++
				remove = append(remove, pods...)
			}
			continue
		}
		st.DesiredNumberScheduled++
		if len(pods) == 0 {
			create = append(create, n.Name)
			continue
		}
		sort.Slice(pods, func(i, j int) bool { return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp) })
		var fresh, old []*corev1.Pod
		for _, p := range pods {
			if p.Labels[TemplateHashLabel] == hash {
				fresh = append(fresh, p)
			} else {
				old = append(old, p)
			}
		}
		st.CurrentNumberScheduled++
		var p *corev1.Pod
		switch {
		case surge && len(fresh) > 0:
			// Surge: the new pod replaces the old ones once Ready.
			p = fresh[0]
			remove = append(remove, fresh[1:]...)
			if isReady(p) {
				remove = append(remove, old...)
			} else if len(old) > 0 {
				surging++
				if isReady(old[0]) {
					p = old[0]
				}
				remove = append(remove, old[1:]...)
			}
		default:
			p = pods[0]
			remove = append(remove, pods[1:]...) // one per node
			if p.Labels[TemplateHashLabel] != hash {
				outdated = append(outdated, p)
			}
		}
		if isReady(p) {
			st.NumberReady++
			st.NumberAvailable++
		}
		if len(fresh) > 0 && (surge || p == fresh[0]) {
			st.UpdatedNumberScheduled++
		}
	}
	for _, pods := range byNode { // pods on nodes that no longer exist
		remove = append(remove, pods...)
	}
	st.NumberUnavailable = st.DesiredNumberScheduled - st.NumberAvailable
	if ds.DeletionTimestamp == nil && c.exp.Satisfied(key) {
		if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
			more, less, err := rollOut(ds, outdated, st, surge, surging)
			if err != nil {
				return err
			}
			create, remove = append(create, more...), append(remove, less...)
		}
		uids := make([]types.UID, len(remove))
		for i, p := range remove {
			uids[i] = p.UID
		}
		c.exp.Expect(key, int64(len(create)), uids)
		for _, node := range create {
			if err := c.createPod(ctx, ds, node, hash); err != nil {
				return err
			}
		}
		for _, p := range remove {
			if err := c.deletePod(ctx, ds, p); err != nil {
				return err
			}
		}
	}
	st.ObservedGeneration = ds.Generation
	st.Conditions, st.CollisionCount = ds.Status.Conditions, &collisions
	if !reflect.DeepEqual(st, ds.Status) {
		ds = ds.DeepCopy()
		ds.Status = st
		_, err := c.client.AppsV1().DaemonSets(ns).UpdateStatus(ctx, ds, metav1.UpdateOptions{})
		if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return c.truncate(ctx, ds, all, update, revs)
}

// truncate deletes revisions beyond revisionHistoryLimit that neither
// the template nor any pod uses.
func (c *Controller) truncate(ctx context.Context, ds *appsv1.DaemonSet, pods []*corev1.Pod, update *appsv1.ControllerRevision, revs []*appsv1.ControllerRevision) error {
	hashes := map[string]bool{}
	for _, p := range pods {
		hashes[p.Labels[TemplateHashLabel]] = true
	}
	live := map[string]bool{update.Name: true}
	for _, r := range revs {
		if hashes[r.Labels[appsv1.ControllerRevisionHashLabelKey]] {
			live[r.Name] = true
		}
	}
	return c.history.Truncate(ctx, revs, live, ptr.Deref(ds.Spec.RevisionHistoryLimit, 10))
}

// surges reports whether a rolling update starts new pods beside the old
// (a non-zero maxSurge) rather than deleting first.
func surges(ds *appsv1.DaemonSet) bool {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType || ru == nil || ru.MaxSurge == nil {
		return false
	}
	return ru.MaxSurge.String() != "0" && ru.MaxSurge.String() != "0%"
}

// rollOut picks what a rolling update does next: with surge, new pods
// beside outdated ones (on as many nodes as maxSurge allows, counting
// those surging already; an outdated pod that is not Ready is simply
// deleted); without, outdated pods deleted (they come back from the new
// template) while no more than maxUnavailable pods are unavailable.
func rollOut(ds *appsv1.DaemonSet, outdated []*corev1.Pod, st appsv1.DaemonSetStatus, surge bool, surging int) (create []string, remove []*corev1.Pod, err error) {
	// Unavailable outdated pods go first: they cost nothing.
	sort.SliceStable(outdated, func(i, j int) bool { return !isReady(outdated[i]) && isReady(outdated[j]) })
	if surge {
		n, err := intstr.GetScaledValueFromIntOrPercent(ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge, int(st.DesiredNumberScheduled), true)
		if err != nil {
			return nil, nil, err
		}
		budget := n - surging
		for _, p := range outdated {
			switch {
			case !isReady(p):
				remove = append(remove, p)
			case budget > 0:
				create = append(create, podNode(p))
				budget--
			}
		}
		return create, remove, nil
	}
	maxUnavailable := intstr.FromInt32(1)
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		maxUnavailable = *ru.MaxUnavailable
	}
	budget, err := intstr.GetScaledValueFromIntOrPercent(&maxUnavailable, int(st.DesiredNumberScheduled), true)
	if err != nil {
		return nil, nil, err
	}
	budget = max(budget, 1) - int(st.NumberUnavailable)
	for _, p := range outdated {
		if isReady(p) {
			if budget <= 0 {
				break
			}
			budget--
		}
		remove = append(remove, p)
	}
	return nil, remove, nil
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podNode is the node a DaemonSet pod is for: its nodeName, or the node its
// required affinity names before it is bound.
func podNode(p *corev1.Pod) string {
	if p.Spec.NodeName != "" {
		return p.Spec.NodeName
	}
	if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, f := range t.MatchFields {
				if f.Key == "metadata.name" && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
					return f.Values[0]
				}
			}
		}
	}
	return ""
}

func (c *Controller) createPod(ctx context.Context, ds *appsv1.DaemonSet, node, hash string) error {
	t := ds.Spec.Template.DeepCopy()
	l := map[string]string{TemplateHashLabel: hash}
	for k, v := range t.Labels {
		l[k] = v
	}
	spec := t.Spec
	spec.Tolerations = append(spec.Tolerations, daemonTolerations...)
	// Pin the pod to its node through required node affinity, replacing
	// any metadata.name term, as upstream does.
	term := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	req := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if req == nil || len(req.NodeSelectorTerms) == 0 {
		spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{term}}
	} else {
		for i := range req.NodeSelectorTerms {
			req.NodeSelectorTerms[i].MatchFields = term.MatchFields
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: ds.Name + "-", Namespace: ds.Namespace, Labels: l, Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, gvk)}},
		Spec: spec,
	}
	created, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.exp.ObservedCreate(ds.Namespace + "/" + ds.Name)
		c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return err
	}
	c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
	return nil
}

func (c *Controller) deletePod(ctx context.Context, ds *appsv1.DaemonSet, p *corev1.Pod) error {
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil {
		c.exp.ObservedDelete(ds.Namespace+"/"+ds.Name, p.UID)
	}
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
		return fmt.Errorf("delete pod %s: %w", p.Name, err)
	}
	c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
	return nil
}
