package persistentvolume

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-helpers/storage/volume"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// world is a fake API server whose objects are copied into the
// controller's caches before every round of syncs.
type world struct {
	t      *testing.T
	client *fake.Clientset
	f      informers.SharedInformerFactory
	c      *Controller
	events *record.FakeRecorder
}

func newWorld(t *testing.T, objs ...runtime.Object) *world {
	t.Helper()
	w := &world{t: t, client: fake.NewClientset(objs...), events: record.NewFakeRecorder(1000)}
	w.f = informers.NewSharedInformerFactory(w.client, 0)
	c, err := New(w.client, w.f, clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.recorder = w.events
	w.c = c
	return w
}

// refresh replaces the caches' contents with the fake API server's.
func (w *world) refresh() {
	ctx := context.Background()
	pvs, err := w.client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	pvcs, err := w.client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	scs, err := w.client.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var pvObjs, pvcObjs, scObjs []any
	for i := range pvs.Items {
		pvObjs = append(pvObjs, &pvs.Items[i])
	}
	for i := range pvcs.Items {
		pvcObjs = append(pvcObjs, &pvcs.Items[i])
	}
	for i := range scs.Items {
		scObjs = append(scObjs, &scs.Items[i])
	}
	for inf, objs := range map[interface{ Replace([]any, string) error }][]any{
		w.f.Core().V1().PersistentVolumes().Informer().GetIndexer():      pvObjs,
		w.f.Core().V1().PersistentVolumeClaims().Informer().GetIndexer(): pvcObjs,
		w.f.Storage().V1().StorageClasses().Informer().GetIndexer():      scObjs,
	} {
		if err := inf.Replace(objs, ""); err != nil {
			w.t.Fatal(err)
		}
	}
}

// settle syncs every claim and volume until nothing changes (a few
// rounds), as the queues would.
func (w *world) settle() {
	w.t.Helper()
	ctx := context.Background()
	for range 4 {
		w.refresh()
		pvcs, _ := w.client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
		for _, pvc := range pvcs.Items {
			if err := w.c.syncClaimKey(ctx, pvc.Namespace+"/"+pvc.Name); err != nil {
				w.t.Fatal(err)
			}
		}
		w.refresh()
		pvs, _ := w.client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
		for _, pv := range pvs.Items {
			if err := w.c.syncVolumeKey(ctx, pv.Name); err != nil {
				w.t.Fatal(err)
			}
		}
	}
}

func (w *world) pv(name string) *corev1.PersistentVolume {
	w.t.Helper()
	pv, err := w.client.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return pv
}

func (w *world) pvc(name string) *corev1.PersistentVolumeClaim {
	w.t.Helper()
	pvc, err := w.client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return pvc
}

// drained returns the events recorded so far.
func (w *world) drained() []string {
	var out []string
	for {
		select {
		case e := <-w.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (w *world) wantEvent(substr string) {
	w.t.Helper()
	evs := w.drained()
	for _, e := range evs {
		if strings.Contains(e, substr) {
			return
		}
	}
	w.t.Fatalf("no event %q in %q", substr, evs)
}

func newPV(name, size, class string, mut ...func(*corev1.PersistentVolume)) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("pv-" + name)},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName:              class,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + name}},
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable},
	}
	for _, m := range mut {
		m(pv)
	}
	return pv
}

func newPVC(name, size string, class *string, mut ...func(*corev1.PersistentVolumeClaim)) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("pvc-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
	}
	for _, m := range mut {
		m(pvc)
	}
	return pvc
}

func wantBound(t *testing.T, w *world, pvcName, pvName string, byController bool) {
	t.Helper()
	pv, pvc := w.pv(pvName), w.pvc(pvcName)
	if pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.Name != pvcName || pv.Spec.ClaimRef.UID != pvc.UID || (byController && pv.Spec.ClaimRef.Kind != "PersistentVolumeClaim") {
		t.Fatalf("volume %s claimRef = %+v, want claim %s with its UID", pvName, pv.Spec.ClaimRef, pvcName)
	}
	if got := metav1.HasAnnotation(pv.ObjectMeta, volume.AnnBoundByController); got != byController {
		t.Errorf("volume bound-by-controller = %v, want %v", got, byController)
	}
	if pv.Status.Phase != corev1.VolumeBound {
		t.Errorf("volume phase %s, want Bound", pv.Status.Phase)
	}
	if pvc.Spec.VolumeName != pvName || pvc.Annotations[volume.AnnBindCompleted] != "yes" {
		t.Errorf("claim volumeName %q annotations %v", pvc.Spec.VolumeName, pvc.Annotations)
	}
	if pvc.Status.Phase != corev1.ClaimBound {
		t.Errorf("claim phase %s, want Bound", pvc.Status.Phase)
	}
	want := pv.Spec.Capacity[corev1.ResourceStorage]
	if got := pvc.Status.Capacity[corev1.ResourceStorage]; got.Cmp(want) != 0 || len(pvc.Status.AccessModes) == 0 {
		t.Errorf("claim status capacity %s modes %v, want %s", got.String(), pvc.Status.AccessModes, want.String())
	}
}

func TestBindsSmallestFittingVolume(t *testing.T) {
	w := newWorld(t,
		newPV("small", "1Gi", ""), newPV("medium", "5Gi", ""), newPV("large", "10Gi", ""),
		newPVC("data", "2Gi", ptr.To("")))
	w.settle()
	wantBound(t, w, "data", "medium", true)
	if !metav1.HasAnnotation(w.pvc("data").ObjectMeta, volume.AnnBoundByController) {
		t.Error("claim lacks bound-by-controller")
	}
	for _, name := range []string{"small", "large"} {
		if pv := w.pv(name); pv.Spec.ClaimRef != nil {
			t.Errorf("volume %s bound too", name)
		}
	}
}

func TestMatchingRejects(t *testing.T) {
	for name, pvc := range map[string]*corev1.PersistentVolumeClaim{
		"class: empty matches only classless": newPVC("c", "1Gi", ptr.To("")),
		"access modes": newPVC("c", "1Gi", ptr.To("fast"), func(c *corev1.PersistentVolumeClaim) {
			c.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		}),
		"capacity": newPVC("c", "20Gi", ptr.To("fast")),
		"selector": newPVC("c", "1Gi", ptr.To("fast"), func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}
		}),
		"volume mode": newPVC("c", "1Gi", ptr.To("fast"), func(c *corev1.PersistentVolumeClaim) {
			c.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
		}),
		"pre-bound to another claim": newPVC("c", "1Gi", ptr.To("other")),
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, newPV("fast", "5Gi", "fast", func(pv *corev1.PersistentVolume) { pv.Labels = map[string]string{"tier": "silver"} }),
				newPV("taken", "5Gi", "other", func(pv *corev1.PersistentVolume) {
					pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "someone-else"}
				}), pvc)
			w.settle()
			if got := w.pvc("c"); got.Spec.VolumeName != "" || got.Status.Phase != corev1.ClaimPending {
				t.Fatalf("claim bound to %q (%s)", got.Spec.VolumeName, got.Status.Phase)
			}
		})
	}
}

func TestSelectorAndClassMatch(t *testing.T) {
	w := newWorld(t,
		newPV("plain", "1Gi", "fast"),
		newPV("gold", "8Gi", "fast", func(pv *corev1.PersistentVolume) { pv.Labels = map[string]string{"tier": "gold"} }),
		newPVC("c", "1Gi", ptr.To("fast"), func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}
		}))
	w.settle()
	wantBound(t, w, "c", "gold", true)
}

func TestVolumePreBoundToClaim(t *testing.T) {
	w := newWorld(t,
		newPV("small", "1Gi", ""),
		newPV("mine", "10Gi", "", func(pv *corev1.PersistentVolume) {
			pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "c"}
		}),
		newPVC("c", "1Gi", ptr.To("")))
	w.settle()
	wantBound(t, w, "c", "mine", false)
}

func TestClaimRequestsVolumeByName(t *testing.T) {
	w := newWorld(t, newPV("small", "1Gi", ""), newPV("wanted", "10Gi", ""),
		newPVC("c", "1Gi", ptr.To(""), func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "wanted" }),
		newPVC("greedy", "50Gi", ptr.To(""), func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "small" }))
	w.settle()
	wantBound(t, w, "c", "wanted", true)
	if metav1.HasAnnotation(w.pvc("c").ObjectMeta, volume.AnnBoundByController) {
		t.Error("claim pre-bound by the user marked bound-by-controller")
	}
	if g := w.pvc("greedy"); g.Status.Phase != corev1.ClaimPending || w.pv("small").Spec.ClaimRef != nil {
		t.Fatalf("too-small requested volume bound: %s", g.Status.Phase)
	}
	w.wantEvent("VolumeMismatch")
}

func TestNoMatchNoClass(t *testing.T) {
	w := newWorld(t, newPVC("c", "1Gi", nil))
	w.settle()
	w.wantEvent("FailedBinding no persistent volumes available for this claim and no storage class is set")
	if w.pvc("c").Status.Phase != corev1.ClaimPending {
		t.Fatal("claim not Pending")
	}
}

func class(name, provisioner string, mode storagev1.VolumeBindingMode) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner, VolumeBindingMode: &mode}
}

func TestWaitForFirstConsumerThenExternalProvisioning(t *testing.T) {
	w := newWorld(t, class("local-path", "skiff.io/local-path", storagev1.VolumeBindingWaitForFirstConsumer),
		newPV("static", "5Gi", "local-path"), newPVC("c", "1Gi", ptr.To("local-path")))
	w.settle()
	if got := w.pvc("c"); got.Spec.VolumeName != "" || w.pv("static").Spec.ClaimRef != nil {
		t.Fatal("WaitForFirstConsumer claim bound by the controller before a node was selected")
	}
	w.wantEvent("WaitForFirstConsumer waiting for first consumer to be created before binding")
	if _, ok := w.pvc("c").Annotations[volume.AnnStorageProvisioner]; ok {
		t.Fatal("provisioning started before a node was selected")
	}

	// The scheduler picks a node, and since the static volume does not
	// suit it, asks for provisioning; the static volume stays Available
	// only because we remove it here.
	if err := w.client.CoreV1().PersistentVolumes().Delete(context.Background(), "static", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc := w.pvc("c")
	metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, volume.AnnSelectedNode, "node-1")
	if _, err := w.client.CoreV1().PersistentVolumeClaims("default").Update(context.Background(), pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	got := w.pvc("c")
	if got.Annotations[volume.AnnStorageProvisioner] != "skiff.io/local-path" || got.Annotations[volume.AnnBetaStorageProvisioner] != "skiff.io/local-path" {
		t.Fatalf("annotations %v", got.Annotations)
	}
	w.wantEvent("ExternalProvisioning Waiting for a volume to be created either by the external provisioner 'skiff.io/local-path' or manually by the system administrator")

	// The provisioner creates a volume pre-bound to the claim.
	made := newPV("pvc-made", "1Gi", "local-path", func(pv *corev1.PersistentVolume) {
		pv.Annotations = map[string]string{volume.AnnDynamicallyProvisioned: "skiff.io/local-path"}
		pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "c", UID: got.UID}
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
	})
	if _, err := w.client.CoreV1().PersistentVolumes().Create(context.Background(), made, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	wantBound(t, w, "c", "pvc-made", false)

	// Deleting the claim releases the volume to its provisioner.
	if err := w.client.CoreV1().PersistentVolumeClaims("default").Delete(context.Background(), "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if pv := w.pv("pvc-made"); pv.Status.Phase != corev1.VolumeReleased {
		t.Fatalf("provisioned volume %s, want Released and left to its provisioner", pv.Status.Phase)
	}
}

func TestImmediateClassWithoutProvisioner(t *testing.T) {
	w := newWorld(t, class("manual", volume.NotSupportedProvisioner, storagev1.VolumeBindingImmediate), newPVC("c", "1Gi", ptr.To("manual")))
	w.settle()
	w.wantEvent("ProvisioningFailed no volume plugin matched name: kubernetes.io/no-provisioner")
	if _, ok := w.pvc("c").Annotations[volume.AnnStorageProvisioner]; ok {
		t.Fatal("claim handed to no-provisioner")
	}
}

func TestReclaimPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy    corev1.PersistentVolumeReclaimPolicy
		mut       func(*corev1.PersistentVolume)
		wantPhase corev1.PersistentVolumePhase // "" means deleted
		wantEvent string
	}{
		{policy: corev1.PersistentVolumeReclaimRetain, wantPhase: corev1.VolumeReleased},
		{policy: corev1.PersistentVolumeReclaimDelete, wantEvent: "VolumeDelete"},
		{policy: corev1.PersistentVolumeReclaimDelete, wantPhase: corev1.VolumeReleased, mut: func(pv *corev1.PersistentVolume) {
			pv.Annotations = map[string]string{volume.AnnDynamicallyProvisioned: "skiff.io/local-path"}
		}},
		{policy: corev1.PersistentVolumeReclaimDelete, wantPhase: corev1.VolumeFailed, wantEvent: "VolumeFailedDelete", mut: func(pv *corev1.PersistentVolume) {
			pv.Spec.PersistentVolumeSource = corev1.PersistentVolumeSource{NFS: &corev1.NFSVolumeSource{Server: "nfs", Path: "/x"}}
		}},
		{policy: corev1.PersistentVolumeReclaimRecycle, wantPhase: corev1.VolumeFailed, wantEvent: "VolumeFailedRecycle"},
	} {
		t.Run(string(tc.policy)+"/"+string(tc.wantPhase), func(t *testing.T) {
			pv := newPV("vol", "1Gi", "", func(pv *corev1.PersistentVolume) { pv.Spec.PersistentVolumeReclaimPolicy = tc.policy })
			if tc.mut != nil {
				tc.mut(pv)
			}
			w := newWorld(t, pv, newPVC("c", "1Gi", ptr.To("")))
			w.settle()
			wantBound(t, w, "c", "vol", true)
			if err := w.client.CoreV1().PersistentVolumeClaims("default").Delete(context.Background(), "c", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			w.settle()
			got, err := w.client.CoreV1().PersistentVolumes().Get(context.Background(), "vol", metav1.GetOptions{})
			if tc.wantPhase == "" {
				if err == nil {
					t.Fatalf("volume not deleted: %s", got.Status.Phase)
				}
			} else if err != nil || got.Status.Phase != tc.wantPhase {
				t.Fatalf("volume %v (%v), want phase %s", got.Status.Phase, err, tc.wantPhase)
			}
			if tc.wantEvent != "" {
				w.wantEvent(tc.wantEvent)
			}
		})
	}
}

func TestNewClaimOfSameNameDoesNotReclaimReleased(t *testing.T) {
	w := newWorld(t, newPV("vol", "1Gi", ""), newPVC("c", "1Gi", ptr.To("")))
	w.settle()
	wantBound(t, w, "c", "vol", true)
	ctx := context.Background()
	if err := w.client.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh := newPVC("c", "1Gi", ptr.To(""))
	fresh.UID = "pvc-c-2"
	if _, err := w.client.CoreV1().PersistentVolumeClaims("default").Create(ctx, fresh, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if pv := w.pv("vol"); pv.Status.Phase != corev1.VolumeReleased {
		t.Fatalf("volume %s, want Released", pv.Status.Phase)
	}
	if pvc := w.pvc("c"); pvc.Status.Phase != corev1.ClaimPending {
		t.Fatalf("new claim %s, want Pending", pvc.Status.Phase)
	}
}

func TestClaimLostWhenVolumeDeleted(t *testing.T) {
	w := newWorld(t, newPV("vol", "1Gi", ""), newPVC("c", "1Gi", ptr.To("")))
	w.settle()
	wantBound(t, w, "c", "vol", true)
	w.drained()
	if err := w.client.CoreV1().PersistentVolumes().Delete(context.Background(), "vol", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if pvc := w.pvc("c"); pvc.Status.Phase != corev1.ClaimLost {
		t.Fatalf("claim %s, want Lost", pvc.Status.Phase)
	}
	w.wantEvent("ClaimLost Bound claim has lost its PersistentVolume. Data on the volume is lost!")
}

func TestSettledBindingMakesNoCalls(t *testing.T) {
	w := newWorld(t, newPV("vol", "1Gi", ""), newPVC("c", "1Gi", ptr.To("")))
	w.settle()
	before := len(w.client.Actions())
	w.settle()
	for _, a := range w.client.Actions()[before:] {
		if a.GetVerb() != "list" && a.GetVerb() != "get" {
			t.Fatalf("settled binding wrote: %v %v", a.GetVerb(), a.GetResource())
		}
	}
}
