package plugins

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

type volumeFixture struct {
	vb                 *VolumeBinding
	pvcs, pvs, classes cache.Indexer
	client             *fake.Clientset
	clock              *testingclock.FakeClock
	nodes              map[string]*framework.NodeInfo
}

func newVolumeFixture(t *testing.T, objs ...runtime.Object) *volumeFixture {
	t.Helper()
	f := &volumeFixture{
		pvcs:    cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}),
		pvs:     cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}),
		classes: cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}),
		clock:   testingclock.NewFakeClock(time.Unix(1000, 0)),
		nodes:   map[string]*framework.NodeInfo{},
	}
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.PersistentVolumeClaim:
			err = f.pvcs.Add(o)
		case *corev1.PersistentVolume:
			err = f.pvs.Add(o)
		case *storagev1.StorageClass:
			err = f.classes.Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	f.client = fake.NewClientset(objs...)
	f.vb = &VolumeBinding{PVCs: corelisters.NewPersistentVolumeClaimLister(f.pvcs), PVs: corelisters.NewPersistentVolumeLister(f.pvs),
		Classes: storagelisters.NewStorageClassLister(f.classes), Client: f.client, Clock: f.clock,
		BindTimeout: time.Minute, PollInterval: time.Second}
	for _, n := range []struct{ name, zone string }{{"n1", "a"}, {"n2", "b"}} {
		f.nodes[n.name] = framework.NewNodeInfo(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name,
			Labels: map[string]string{corev1.LabelHostname: n.name, corev1.LabelTopologyZone: n.zone}}})
	}
	return f
}

func class(name, provisioner string, mode storagev1.VolumeBindingMode, zones ...string) *storagev1.StorageClass {
	c := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner, VolumeBindingMode: &mode}
	if len(zones) > 0 {
		c.AllowedTopologies = []corev1.TopologySelectorTerm{{MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{{Key: corev1.LabelTopologyZone, Values: zones}}}}
	}
	return c
}

func pvc(name, className, size string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To(className), AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
	}
}

func localPV(name, className, size, node string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName: className, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: "/mnt/" + name}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}}}},
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable},
	}
}

func podWithClaims(name string, claims ...string) *framework.PodInfo {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)}}
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	pi, _ := framework.NewPodInfo(p)
	return pi
}

// fits runs PreFilter and Filter and returns, per node, "" for a fit or
// the reason; a PreFilter rejection is returned as "pre: reason".
func (f *volumeFixture) fits(pi *framework.PodInfo) (map[string]string, *framework.CycleState) {
	state := framework.NewCycleState()
	if st := f.vb.PreFilter(context.Background(), state, pi, nil); !st.IsSuccess() {
		return map[string]string{"pre": strings.Join(st.Reasons, ",")}, state
	}
	out := map[string]string{}
	for _, name := range []string{"n1", "n2"} {
		if st := f.vb.Filter(context.Background(), state, pi, f.nodes[name]); !st.IsSuccess() {
			if st.Code != framework.UnschedulableAndUnresolvable {
				out[name] = "wrong code"
			} else {
				out[name] = strings.Join(st.Reasons, ",")
			}
		} else {
			out[name] = ""
		}
	}
	return out, state
}

const (
	wffc      = storagev1.VolumeBindingWaitForFirstConsumer
	immediate = storagev1.VolumeBindingImmediate
)

func TestVolumeBindingFilter(t *testing.T) {
	boundClaim := pvc("bound", "static", "1Gi")
	boundClaim.Spec.VolumeName = "pv-bound"
	selected := pvc("selected", "local", "1Gi")
	selected.Annotations = map[string]string{volumehelpers.AnnSelectedNode: "n2"}
	claimed := localPV("pv-claimed", "static", "1Gi", "n1")
	claimed.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "someone-else"}
	prebound := localPV("pv-prebound", "static", "1Gi", "n2")
	prebound.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "wants-prebound"}
	objs := []runtime.Object{
		class("static", noProvisioner, wffc), class("local", "skiff.io/local-path", wffc), class("zoned", "skiff.io/local-path", wffc, "a"),
		class("now", "skiff.io/local-path", immediate),
		boundClaim, localPV("pv-bound", "static", "1Gi", "n1"), selected, claimed, prebound,
		pvc("immediate", "now", "1Gi"), pvc("noclass", "", "1Gi"), pvc("static-small", "static", "500Mi"), pvc("static-big", "static", "5Gi"),
		pvc("local", "local", "1Gi"), pvc("zoned", "zoned", "1Gi"), pvc("wants-prebound", "static", "1Gi"),
		localPV("pv-n1", "static", "2Gi", "n1"),
	}
	tests := []struct {
		name   string
		claims []string
		want   map[string]string
	}{
		{"no claims", nil, map[string]string{"n1": "", "n2": ""}},
		{"bound local volume pins the node", []string{"bound"}, map[string]string{"n1": "", "n2": ReasonVolumeNodeAffinity}},
		{"immediate unbound claim", []string{"immediate"}, map[string]string{"pre": ReasonUnboundImmediate}},
		{"claim without a class is immediate", []string{"noclass"}, map[string]string{"pre": ReasonUnboundImmediate}},
		{"missing claim", []string{"nope"}, map[string]string{"pre": `persistentvolumeclaim "nope" not found`}},
		{"static volume on n1 only", []string{"static-small"}, map[string]string{"n1": "", "n2": ReasonBindConflict}},
		{"no static volume big enough", []string{"static-big"}, map[string]string{"n1": ReasonBindConflict, "n2": ReasonBindConflict}},
		{"provisioner anywhere", []string{"local"}, map[string]string{"n1": "", "n2": ""}},
		{"allowedTopologies", []string{"zoned"}, map[string]string{"n1": "", "n2": ReasonBindConflict}},
		{"selected node sticks", []string{"selected"}, map[string]string{"n1": ReasonBindConflict, "n2": ""}},
		{"pre-bound volume only for its claim", []string{"wants-prebound"}, map[string]string{"n1": ReasonBindConflict, "n2": ""}},
		{"bound and provisioned together", []string{"bound", "local"}, map[string]string{"n1": "", "n2": ReasonVolumeNodeAffinity}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newVolumeFixture(t, objs...)
			got, _ := f.fits(podWithClaims("p", tc.claims...))
			for k, want := range tc.want {
				if got[k] != want {
					t.Errorf("%s: got %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

func TestVolumeBindingChoosesSmallestAndReserves(t *testing.T) {
	f := newVolumeFixture(t, class("static", noProvisioner, wffc), pvc("a", "static", "1Gi"), pvc("b", "static", "1Gi"),
		localPV("pv-big", "static", "10Gi", "n1"), localPV("pv-small", "static", "2Gi", "n1"))
	ctx := context.Background()
	pa := podWithClaims("pa", "a")
	got, state := f.fits(pa)
	if got["n1"] != "" {
		t.Fatalf("pa on n1: %q", got["n1"])
	}
	if st := f.vb.Reserve(ctx, state, pa, "n1"); !st.IsSuccess() {
		t.Fatal(st.Reasons)
	}
	if pv := state.Read(framework.VolumeBindingState).(*volumeState).reserved.static["default/a"]; pv.Name != "pv-small" {
		t.Fatalf("chose %s, want the smallest fitting pv-small", pv.Name)
	}
	// A second pod's cycle, while the first is binding, takes the other.
	pb := podWithClaims("pb", "b")
	_, stateB := f.fits(pb)
	if st := f.vb.Reserve(ctx, stateB, pb, "n1"); !st.IsSuccess() {
		t.Fatal(st.Reasons)
	}
	if pv := stateB.Read(framework.VolumeBindingState).(*volumeState).reserved.static["default/b"]; pv.Name != "pv-big" {
		t.Fatalf("second pod chose %s, want pv-big", pv.Name)
	}
	// A third claim finds nothing; once the first pod unreserves it fits.
	if err := f.pvcs.Add(pvc("c", "static", "1Gi")); err != nil {
		t.Fatal(err)
	}
	pc := podWithClaims("pc", "c")
	if got, _ := f.fits(pc); got["n1"] != ReasonBindConflict {
		t.Fatalf("third pod on n1: %q, want a bind conflict", got["n1"])
	}
	f.vb.Unreserve(ctx, state, pa, "n1")
	if got, _ := f.fits(pc); got["n1"] != "" {
		t.Fatalf("third pod after unreserve: %q", got["n1"])
	}
}

// preBind runs PreBind in the background and returns its result channel.
func (f *volumeFixture) preBind(state *framework.CycleState, pi *framework.PodInfo, node string) chan *framework.Status {
	done := make(chan *framework.Status, 1)
	go func() { done <- f.vb.PreBind(context.Background(), state, pi, node) }()
	return done
}

func (f *volumeFixture) waitForWaiter(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !f.clock.HasWaiters(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("PreBind never waited")
		}
	}
}

func (f *volumeFixture) markBound(t *testing.T, name, pv string) {
	t.Helper()
	obj, _, _ := f.pvcs.GetByKey("default/" + name)
	c := obj.(*corev1.PersistentVolumeClaim).DeepCopy()
	c.Spec.VolumeName, c.Status.Phase = pv, corev1.ClaimBound
	if err := f.pvcs.Update(c); err != nil {
		t.Fatal(err)
	}
}

func TestPreBindStaticSetsClaimRefAndWaits(t *testing.T) {
	f := newVolumeFixture(t, class("static", noProvisioner, wffc), pvc("a", "static", "1Gi"), localPV("pv-1", "static", "1Gi", "n1"))
	pi := podWithClaims("p", "a")
	_, state := f.fits(pi)
	if st := f.vb.Reserve(context.Background(), state, pi, "n1"); !st.IsSuccess() {
		t.Fatal(st.Reasons)
	}
	done := f.preBind(state, pi, "n1")
	f.waitForWaiter(t)
	pv, err := f.client.CoreV1().PersistentVolumes().Get(context.Background(), "pv-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := pv.Spec.ClaimRef; r == nil || r.Name != "a" || r.Namespace != "default" || r.UID != "uid-a" {
		t.Fatalf("claimRef %+v", r)
	}
	if pv.Annotations["pv.kubernetes.io/bound-by-controller"] != "yes" {
		t.Errorf("annotations %v", pv.Annotations)
	}
	select {
	case st := <-done:
		t.Fatalf("PreBind returned %v before the claim was bound", st)
	default:
	}
	f.markBound(t, "a", "pv-1")
	f.clock.Step(time.Second)
	if st := <-done; !st.IsSuccess() {
		t.Fatalf("PreBind: %v", st.Reasons)
	}
}

func TestPreBindProvisionSelectsNodeAndTimesOut(t *testing.T) {
	f := newVolumeFixture(t, class("local", "skiff.io/local-path", wffc), pvc("a", "local", "1Gi"))
	pi := podWithClaims("p", "a")
	_, state := f.fits(pi)
	if st := f.vb.Reserve(context.Background(), state, pi, "n2"); !st.IsSuccess() {
		t.Fatal(st.Reasons)
	}
	done := f.preBind(state, pi, "n2")
	f.waitForWaiter(t)
	c, err := f.client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Annotations[volumehelpers.AnnSelectedNode] != "n2" {
		t.Fatalf("annotations %v", c.Annotations)
	}
	for i := 0; i < 61; i++ {
		f.clock.Step(time.Second)
		// Either PreBind gave up or it waits again.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			select {
			case st := <-done:
				if st.IsSuccess() || !strings.Contains(strings.Join(st.Reasons, ","), "timed out") {
					t.Fatalf("PreBind: %+v, want a timeout", st)
				}
				if i < 59 {
					t.Fatalf("PreBind gave up after %d s, before the 1 minute timeout", i+1)
				}
				return
			default:
			}
			if f.clock.HasWaiters() {
				break
			}
		}
	}
	t.Fatal("PreBind did not time out")
}

func TestPreBindCancelled(t *testing.T) {
	f := newVolumeFixture(t, class("local", "skiff.io/local-path", wffc), pvc("a", "local", "1Gi"))
	pi := podWithClaims("p", "a")
	_, state := f.fits(pi)
	f.vb.Reserve(context.Background(), state, pi, "n1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *framework.Status, 1)
	go func() { done <- f.vb.PreBind(ctx, state, pi, "n1") }()
	f.waitForWaiter(t)
	cancel()
	if st := <-done; st.IsSuccess() {
		t.Fatal("PreBind succeeded after cancel")
	}
}
