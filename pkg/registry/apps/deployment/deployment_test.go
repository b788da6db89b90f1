package deployment_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/server/servertest"
)

func template(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:v1"}}},
	}
}

// TestWorkloads covers what the workload resources share: defaults,
// selector/template validation, generation and the scale subresource.
func TestWorkloads(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	apps := srv.Client.AppsV1()
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}

	d, err := apps.Deployments("default").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: template("web")}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.RollingUpdate.MaxSurge.String() != "25%" || *d.Spec.RevisionHistoryLimit != 10 || d.Generation != 1 {
		t.Fatalf("deployment defaults: %+v generation %d", d.Spec, d.Generation)
	}
	bad := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: template("other")}}
	if _, err := apps.Deployments("default").Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "`selector` does not match template `labels`") {
		t.Fatalf("mismatched selector: %v", err)
	}

	// Scale through the subresource bumps generation; a status write does not.
	scale, err := apps.Deployments("default").GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil || scale.Spec.Replicas != 1 || scale.Status.Selector != "app=web" {
		t.Fatalf("get scale: %v %+v", err, scale)
	}
	scale.Spec.Replicas = 4
	if _, err := apps.Deployments("default").UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d, _ = apps.Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if *d.Spec.Replicas != 4 || d.Generation != 2 {
		t.Fatalf("after scale: replicas %d generation %d", *d.Spec.Replicas, d.Generation)
	}
	d.Status.ObservedGeneration = 2
	d.Status.Replicas = 4
	if d, err = apps.Deployments("default").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil || d.Generation != 2 || d.Status.Replicas != 4 {
		t.Fatalf("status update: %v generation %d", err, d.Generation)
	}
	d.Labels = map[string]string{"x": "y"}
	if d, err = apps.Deployments("default").Update(ctx, d, metav1.UpdateOptions{}); err != nil || d.Generation != 2 {
		t.Fatalf("metadata-only update changed generation: %v %d", err, d.Generation)
	}
	stale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", ResourceVersion: "1"}, Spec: autoscalingv1.ScaleSpec{Replicas: 2}}
	if _, err := apps.Deployments("default").UpdateScale(ctx, "web", stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale scale: %v", err)
	}

	rs, err := apps.ReplicaSets("default").Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "rs"}, Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: template("web")}}, metav1.CreateOptions{})
	if err != nil || *rs.Spec.Replicas != 1 {
		t.Fatalf("replicaset: %v", err)
	}
	if _, err := apps.StatefulSets("default").Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: template("web"), ServiceName: "db"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if s, err := apps.StatefulSets("default").GetScale(ctx, "db", metav1.GetOptions{}); err != nil || s.Spec.Replicas != 1 {
		t.Fatalf("statefulset scale: %v", err)
	}
	rc, err := srv.Client.CoreV1().ReplicationControllers("default").Create(ctx, &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "kubia"}, Spec: corev1.ReplicationControllerSpec{Template: &corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "kubia"}}, Spec: template("kubia").Spec}}}, metav1.CreateOptions{})
	if err != nil || rc.Spec.Selector["app"] != "kubia" || *rc.Spec.Replicas != 1 {
		t.Fatalf("rc defaults: %v %+v", err, rc)
	}

	job, err := srv.Client.BatchV1().Jobs("default").Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi"}, Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "pi", Image: "perl"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] != string(job.UID) || job.Spec.Template.Labels[batchv1.JobNameLabel] != "pi" || *job.Spec.BackoffLimit != 6 {
		t.Fatalf("job selector and defaults: %+v", job.Spec)
	}
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "cj"}, Spec: batchv1.CronJobSpec{Schedule: "not a schedule", JobTemplate: batchv1.JobTemplateSpec{Spec: job.Spec}}}
	cj.Spec.JobTemplate.Spec.Selector = nil
	if _, err := srv.Client.BatchV1().CronJobs("default").Create(ctx, cj, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.schedule") {
		t.Fatalf("bad schedule: %v", err)
	}
}
