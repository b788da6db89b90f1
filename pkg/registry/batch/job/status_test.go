package job_test

import (
	"context"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff/skiff/pkg/server/servertest"
)

// Status updates of jobs and cronjobs may change labels and annotations, as
// upstream's ("Job should apply changes to a job status", "CronJob should
// support CronJob API operations"), but never the spec.
func TestStatusUpdatesKeepMetadataChanges(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	podSpec := corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	jobs := srv.Client.BatchV1().Jobs("default")
	j, err := jobs.Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j"}, Spec: batchv1.JobSpec{Template: podSpec, Suspend: new(bool)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j.Labels = map[string]string{"patched": "yes"}
	j.Annotations = map[string]string{"note": "status"}
	j.Spec.Parallelism = new(int32)
	now := metav1.Now()
	j.Status.StartTime = &now
	got, err := jobs.UpdateStatus(ctx, j, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["patched"] != "yes" || got.Annotations["note"] != "status" || got.Status.StartTime == nil {
		t.Fatalf("job status update lost metadata or status: %+v %+v", got.ObjectMeta, got.Status)
	}
	if got.Spec.Parallelism == nil || *got.Spec.Parallelism != 1 {
		t.Fatalf("job status update changed spec.parallelism to %v", got.Spec.Parallelism)
	}
	got, err = jobs.Patch(ctx, "j", types.MergePatchType, []byte(`{"metadata":{"annotations":{"p":"1"}}}`), metav1.PatchOptions{}, "status")
	if err != nil || got.Annotations["p"] != "1" {
		t.Fatalf("job status patch: %v %v", err, got.Annotations)
	}

	cronjobs := srv.Client.BatchV1().CronJobs("default")
	cj, err := cronjobs.Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "cj"}, Spec: batchv1.CronJobSpec{Schedule: "*/1 * * * *",
		JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podSpec}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cj.Annotations = map[string]string{"updatestatus": "true"}
	cj.Spec.Schedule = "*/2 * * * *"
	got2, err := cronjobs.UpdateStatus(ctx, cj, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got2.Annotations["updatestatus"] != "true" || got2.Spec.Schedule != "*/1 * * * *" {
		t.Fatalf("cronjob status update: annotations %v schedule %q", got2.Annotations, got2.Spec.Schedule)
	}
	got2, err = cronjobs.Patch(ctx, "cj", types.MergePatchType, []byte(`{"metadata":{"annotations":{"patchedstatus":"true"}}}`), metav1.PatchOptions{}, "status")
	if err != nil || got2.Annotations["patchedstatus"] != "true" {
		t.Fatalf("cronjob status patch: %v %v", err, got2.Annotations)
	}
	if _, err := cronjobs.Patch(ctx, "cj", types.MergePatchType, []byte(`{"metadata":{"labels":{"bad label":"x"}}}`), metav1.PatchOptions{}, "status"); err == nil {
		t.Fatal("cronjob status patch with an invalid label succeeded")
	}
}
