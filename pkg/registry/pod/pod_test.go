package pod_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/pkg/registry/pod"
	"github.com/skiff/skiff/pkg/server/servertest"
)

func basic(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:v1"}}}}
}

func TestValidationPaths(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*corev1.Pod)
		want []string
	}{
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, []string{"spec.containers: Required value"}},
		{"duplicate names", func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) }, []string{`spec.containers[1].name: Duplicate value: "app"`}},
		{"missing image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, []string{"spec.containers[0].image: Required value"}},
		{"bad port", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 0, Protocol: "TCP"}}
		}, []string{"spec.containers[0].ports[0].containerPort: Required value"}},
		{"unknown mount", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}, []string{`spec.containers[0].volumeMounts[0].name: Not found: "data"`}},
		{"request above limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}
		}, []string{"spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1"}},
		{"bad restart policy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, []string{`spec.restartPolicy: Unsupported value: "Sometimes"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := basic("p")
			pod.DefaultPod(p)
			tc.mut(p)
			errs := pod.ValidatePodSpec(&p.Spec, field.NewPath("spec"))
			got := errs.ToAggregate()
			for _, w := range tc.want {
				if got == nil || !strings.Contains(got.Error(), w) {
					t.Errorf("errors %v lack %q", got, w)
				}
			}
		})
	}
}

func TestDefaultsAndQoS(t *testing.T) {
	p := basic("p")
	p.Spec.Containers[0].Image = "nginx"
	p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	pod.DefaultPod(p)
	c := p.Spec.Containers[0]
	if c.ImagePullPolicy != corev1.PullAlways || p.Spec.RestartPolicy != corev1.RestartPolicyAlways || *p.Spec.TerminationGracePeriodSeconds != 30 || len(p.Spec.Tolerations) != 0 {
		t.Fatalf("defaults: %+v", p.Spec)
	}
	if got := pod.QOSClass(&p.Spec); got != corev1.PodQOSGuaranteed {
		t.Fatalf("requests defaulted from limits should be Guaranteed, got %s", got)
	}
	if pod.DefaultPullPolicy("registry:5000/app:1.2") != corev1.PullIfNotPresent || pod.DefaultPullPolicy("registry:5000/app") != corev1.PullAlways {
		t.Fatal("pull policy by tag")
	}
}

func TestStatusColumn(t *testing.T) {
	now := metav1.Now()
	cases := []struct {
		name string
		pod  corev1.Pod
		want string
	}{
		{"pending", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}, "Pending"},
		{"crashloop", corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "a", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}}}, "CrashLoopBackOff"},
		{"init", corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "i"}}, Containers: []corev1.Container{{Name: "a"}}}, Status: corev1.PodStatus{Phase: corev1.PodPending,
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "i", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}, "Init:0/1"},
		{"completed", corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "a", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}}}}, "Completed"},
		{"terminating", corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}, "Terminating"},
	}
	for _, tc := range cases {
		if _, _, _, _, got := pod.Summary(&tc.pod); got != tc.want {
			t.Errorf("%s: STATUS %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestBindingGracefulDeleteAndFieldSelectors(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	pods := srv.Client.CoreV1().Pods("default")
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, name := range []string{"bound", "unbound"} {
		if _, err := pods.Create(ctx, basic(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "bound"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-a"}}
	if err := pods.Bind(ctx, bind, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Bind(ctx, bind, metav1.CreateOptions{}); !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "already assigned to node") {
		t.Fatalf("second binding: %v", err)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type != watch.Added || ev.Object.(*corev1.Pod).Name != "bound" {
			t.Fatalf("watch by spec.nodeName: %v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("binding not seen by a spec.nodeName watch")
	}
	list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a"})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("list by spec.nodeName: %v %d", err, len(list.Items))
	}
	p := list.Items[0]
	scheduled := false
	for _, c := range p.Status.Conditions {
		scheduled = scheduled || (c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue)
	}
	if !scheduled {
		t.Fatal("binding did not set PodScheduled")
	}

	// A bound pod is deleted gracefully; an unbound one at once.
	if err := pods.Delete(ctx, "bound", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := pods.Get(ctx, "bound", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp == nil || *got.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("graceful delete: %v %+v", err, got.ObjectMeta)
	}
	if err := pods.Delete(ctx, "unbound", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "unbound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("unbound pod should be gone: %v", err)
	}
	zero := int64(0)
	if err := pods.Delete(ctx, "bound", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "bound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("force delete should remove the pod: %v", err)
	}

	// Eviction deletes.
	if _, err := pods.Create(ctx, basic("evictee"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "evictee", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "evictee", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("evicted pod still there: %v", err)
	}
	// Logs of an unscheduled pod: upstream's message.
	if _, err := pods.Create(ctx, basic("nolog"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = pods.GetLogs("nolog", &corev1.PodLogOptions{}).Do(ctx).Error()
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "does not have a host assigned") {
		t.Fatalf("logs of unscheduled pod: %v", err)
	}
}

func TestPodSpecIsImmutable(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	pods := srv.Client.CoreV1().Pods("default")
	p, err := pods.Create(ctx, basic("imm"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.Containers[0].Image = "example/app:v2"
	if p, err = pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("image update must be allowed: %v", err)
	}
	p.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "pod updates may not change fields") {
		t.Fatalf("restartPolicy update: %v", err)
	}
}

func TestStatusUpdateOfTerminatingPodKeepsIt(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	pods := srv.Client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, basic("t"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "t"}, Target: corev1.ObjectReference{Name: "n"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "t", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := pods.Get(ctx, "t", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "t", metav1.GetOptions{}); err != nil {
		t.Fatalf("a status update removed a pod in its grace period: %v", err)
	}
}
