package statefulset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

var errCrash = errors.New("injected crash")

// chaos is a world whose controller dies (every write fails from a random
// write on, and a new controller with no memory replaces it) while the
// invariants are checked on every write it makes.
type chaos struct {
	*world
	rng       *rand.Rand
	syncing   bool
	crashAt   int // writes until the crash; <0: none this sync
	crashes   int
	violation []string
}

func (ch *chaos) restart() {
	ch.f = informers.NewSharedInformerFactory(ch.client, 0)
	c, err := New(ch.client, ch.f, ch.clk, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		ch.t.Fatal(err)
	}
	ch.c = c
}

// podsNow reads the fake's pods without passing through the reactors.
func (ch *chaos) podsNow() map[int]*corev1.Pod {
	objs, err := ch.client.Tracker().List(corev1.SchemeGroupVersion.WithResource("pods"), corev1.SchemeGroupVersion.WithKind("Pod"), "default")
	if err != nil {
		ch.t.Fatal(err)
	}
	out := map[int]*corev1.Pod{}
	for _, p := range objs.(*corev1.PodList).Items {
		n, _ := strconv.Atoi(p.Name[len("web-"):])
		out[n] = &p
	}
	return out
}

func (ch *chaos) setNow() *appsv1.StatefulSet {
	obj, err := ch.client.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("statefulsets"), "default", "web")
	if err != nil {
		ch.t.Fatal(err)
	}
	return obj.(*appsv1.StatefulSet)
}

// react checks each write of the controller against the invariants and
// crashes it when its time comes.
func (ch *chaos) react(a k8stesting.Action) (bool, runtime.Object, error) {
	if !ch.syncing || a.GetVerb() == "get" || a.GetVerb() == "list" || a.GetVerb() == "watch" {
		return false, nil, nil
	}
	if ch.crashAt == 0 {
		return true, nil, errCrash
	}
	ch.crashAt--
	if a.GetResource().Resource != "pods" {
		return false, nil, nil
	}
	pods, n := ch.podsNow(), replicas(ch.setNow())
	switch a := a.(type) {
	case k8stesting.CreateAction:
		p := a.GetObject().(*corev1.Pod)
		ord, _ := strconv.Atoi(p.Name[len("web-"):])
		if _, ok := pods[ord]; ok {
			ch.violation = append(ch.violation, "created "+p.Name+" while it existed")
		}
		for i := range ord {
			if q, ok := pods[i]; !ok || readySince(q) == nil {
				ch.violation = append(ch.violation, fmt.Sprintf("created %s before web-%d was Ready", p.Name, i))
			}
		}
	case k8stesting.DeleteAction:
		ord, _ := strconv.Atoi(a.GetName()[len("web-"):])
		if ord < n {
			return false, nil, nil // a rolling update or a failed pod
		}
		for i, q := range pods {
			if i != ord && readySince(q) == nil {
				ch.violation = append(ch.violation, fmt.Sprintf("scaled down %s while web-%d was unready", a.GetName(), i))
			}
		}
	}
	return false, nil, nil
}

// step syncs once, maybe crashing, then lets the kubelets act: each pod
// becomes Ready with some chance, and a Ready pod sometimes stops being.
func (ch *chaos) step() {
	ch.crashAt = -1
	if ch.rng.IntN(4) == 0 {
		ch.crashAt = ch.rng.IntN(4)
	}
	ch.refresh()
	ch.syncing = true
	err := ch.c.sync(context.Background(), "default/web")
	ch.syncing = false
	if errors.Is(err, errCrash) || ch.crashAt == 0 {
		ch.crashes++
		ch.restart()
	} else if err != nil {
		ch.t.Fatal(err)
	}
	for _, p := range ch.podsNow() {
		switch ready := readySince(p) != nil; {
		case !ready && ch.rng.IntN(2) == 0:
			ch.setReady(true, p.Name)
		case ready && ch.rng.IntN(10) == 0:
			ch.setReady(false, p.Name)
		}
	}
	ch.clk.Step(time.Second)
}

// converge makes every pod Ready and syncs until the set is done.
func (ch *chaos) converge(want int, image string) {
	ch.t.Helper()
	for range 200 {
		ch.crashAt = -1
		ch.refresh()
		ch.syncing = true
		if err := ch.c.sync(context.Background(), "default/web"); err != nil {
			ch.t.Fatal(err)
		}
		ch.syncing = false
		pods := ch.podsNow()
		for _, p := range pods {
			if readySince(p) == nil {
				ch.setReady(true, p.Name)
			}
		}
		st := ch.setNow().Status
		done := len(pods) == want && st.ReadyReplicas == int32(want) && st.UpdatedReplicas == int32(want) && st.CurrentRevision == st.UpdateRevision
		for i := range want {
			if p, ok := pods[i]; !ok || p.Spec.Containers[0].Image != image {
				done = false
			}
		}
		if done {
			return
		}
	}
	ch.t.Fatalf("did not converge to %d pods of %s: %v", want, image, ch.podsNow())
}

// TestChaos kills the controller at random writes during scale-up,
// scale-down and rolling updates, with pods flapping between Ready and
// not: it never creates a pod before its predecessors are Ready, never
// scales down while a pod is unready, and always converges.
func TestChaos(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for run := range 20 {
		rng := rand.New(rand.NewPCG(seed, uint64(run)))
		ch := &chaos{world: newWorld(t, newSet(int32(1+rng.IntN(5)), appsv1.OrderedReadyPodManagement)), rng: rng}
		ch.client.PrependReactor("*", "*", ch.react)
		image := "v1"
		for phase := range 4 {
			for range 10 + rng.IntN(20) {
				ch.step()
			}
			ch.updateSet(func(s *appsv1.StatefulSet) {
				if phase%2 == 0 {
					s.Spec.Replicas = ptr.To(int32(rng.IntN(6)))
				} else {
					image = fmt.Sprintf("v%d", phase+1)
					s.Spec.Template.Spec.Containers[0].Image = image
				}
			})
		}
		ch.converge(replicas(ch.setNow()), image)
		for _, v := range ch.violation {
			t.Errorf("seed %d run %d: %s", seed, run, v)
		}
		t.Logf("run %d: %d crashes, %d replicas", run, ch.crashes, replicas(ch.setNow()))
	}
}
