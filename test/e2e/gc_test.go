package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff/skiff/test/e2e/framework"
)

// ownedConfigMaps creates an owner ConfigMap and n dependents that name it
// in ownerReferences (blockOwnerDeletion set, as controllers set it).
func ownedConfigMaps(t *testing.T, cs kubernetes.Interface, owner string, n int) {
	t.Helper()
	ctx := context.Background()
	o, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: owner}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	for i := range n {
		_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name:            fmt.Sprintf("%s-dep-%d", owner, i),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner, UID: o.UID, BlockOwnerDeletion: &yes}},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func gone(cs kubernetes.Interface, name string) bool {
	_, err := cs.CoreV1().ConfigMaps("default").Get(context.Background(), name, metav1.GetOptions{})
	return apierrors.IsNotFound(err)
}

// TestGarbageCollection deletes owners with kubectl's three cascade modes
// and checks what happens to their dependents.
func TestGarbageCollection(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	cs := c.Client()
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]

	// background (kubectl's default): dependents go after the owner.
	ownedConfigMaps(t, cs, "bg", 3)
	k.Must(t, c, "delete", "configmap", "bg")
	framework.Eventually(t, 15*time.Second, "background dependents deleted", func() bool {
		return gone(cs, "bg-dep-0") && gone(cs, "bg-dep-1") && gone(cs, "bg-dep-2")
	})

	// foreground: the owner goes only after its dependents; kubectl waits.
	ownedConfigMaps(t, cs, "fg", 3)
	k.Must(t, c, "delete", "configmap", "fg", "--cascade=foreground", "--timeout=30s")
	for i := range 3 {
		if !gone(cs, fmt.Sprintf("fg-dep-%d", i)) {
			t.Fatalf("fg-dep-%d outlived its foreground-deleted owner", i)
		}
	}

	// orphan: dependents stay, without the owner reference.
	ownedConfigMaps(t, cs, "orph", 2)
	k.Must(t, c, "delete", "configmap", "orph", "--cascade=orphan", "--timeout=30s")
	for i := range 2 {
		cm, err := cs.CoreV1().ConfigMaps("default").Get(context.Background(), fmt.Sprintf("orph-dep-%d", i), metav1.GetOptions{})
		if err != nil || len(cm.OwnerReferences) != 0 {
			t.Fatalf("orphaned dependent: %v %+v", err, cm)
		}
	}

	// A dependent with a live second owner only loses the dead one.
	ownedConfigMaps(t, cs, "a", 1)
	b, err := cs.CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep, _ := cs.CoreV1().ConfigMaps("default").Get(context.Background(), "a-dep-0", metav1.GetOptions{})
	dep.OwnerReferences = append(dep.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "b", UID: b.UID})
	if _, err := cs.CoreV1().ConfigMaps("default").Update(context.Background(), dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.Must(t, c, "delete", "configmap", "a")
	framework.Eventually(t, 15*time.Second, "dead owner reference dropped", func() bool {
		cm, err := cs.CoreV1().ConfigMaps("default").Get(context.Background(), "a-dep-0", metav1.GetOptions{})
		return err == nil && len(cm.OwnerReferences) == 1 && cm.OwnerReferences[0].Name == "b"
	})

	// A cycle of blocking owner references (c1 <- c2 <- c3 <- c1) does not
	// hold a foreground deletion forever: every member goes.
	var cyc []*corev1.ConfigMap
	for i := range 3 {
		cm, err := cs.CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cyc%d", i)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cyc = append(cyc, cm)
	}
	for i, cm := range cyc {
		owner := cyc[(i+2)%3]
		patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":%q,"uid":%q,"controller":true,"blockOwnerDeletion":true}]}}`, owner.Name, owner.UID)
		if _, err := cs.CoreV1().ConfigMaps("default").Patch(context.Background(), cm.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	fg := metav1.DeletePropagationForeground
	if err := cs.CoreV1().ConfigMaps("default").Delete(context.Background(), "cyc0", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, "every member of an ownership cycle deleted", func() bool {
		return gone(cs, "cyc0") && gone(cs, "cyc1") && gone(cs, "cyc2")
	})
}
