package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

func jobYAML(name, spec, command string) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %s
spec:
%s
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: %s
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", %q]
`, name, spec, busybox, command)
}

func jobPods(t *testing.T, c *framework.Cluster, job string) []corev1.Pod {
	t.Helper()
	l, err := c.Client().CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// TestJobsRunToCompletion runs Jobs as real containers: completions with
// parallelism, a failing job past its backoffLimit, an Indexed job, a
// finished job removed by its TTL, and `kubectl delete job` taking the
// pods with it.
func TestJobsRunToCompletion(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]

	// The book's batch job, shortened: five completions, two at a time.
	k.MustIn(t, c, jobYAML("multi", "  completions: 5\n  parallelism: 2", "sleep 1; echo done"), "create", "-f", "-")
	k.MustIn(t, c, jobYAML("fails", "  backoffLimit: 1", "echo failing; exit 3"), "create", "-f", "-")
	k.MustIn(t, c, `apiVersion: batch/v1
kind: CronJob
metadata:
  name: minutely
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: `+busybox+`
            imagePullPolicy: IfNotPresent
            command: ["echo", "tick"]
`, "create", "-f", "-")
	k.MustIn(t, c, jobYAML("indexed", "  completions: 3\n  parallelism: 3\n  completionMode: Indexed", "echo index=$JOB_COMPLETION_INDEX"), "create", "-f", "-")
	maxActive := 0
	framework.Eventually(t, 90*time.Second, "job multi complete", func() bool {
		active := 0
		for _, p := range jobPods(t, c, "multi") {
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				active++
			}
		}
		maxActive = max(maxActive, active)
		return strings.Contains(k.Must(t, c, "get", "job", "multi", "-o", "jsonpath={.status.conditions[?(@.type=='Complete')].status}"), "True")
	})
	if maxActive > 2 {
		t.Errorf("%d pods of job multi ran at once, parallelism is 2", maxActive)
	}
	out := k.Must(t, c, "get", "job", "multi")
	if !strings.Contains(out, "5/5") || !strings.Contains(out, "Complete") {
		t.Errorf("kubectl get job:\n%s", out)
	}
	pods := jobPods(t, c, "multi")
	if len(pods) != 5 {
		t.Errorf("job multi made %d pods, want 5", len(pods))
	}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodSucceeded || len(p.Finalizers) != 0 {
			t.Errorf("pod %s: phase %s finalizers %v", p.Name, p.Status.Phase, p.Finalizers)
		}
	}
	if logs := k.Must(t, c, "logs", "job/multi"); strings.TrimSpace(logs) != "done" {
		t.Errorf("kubectl logs job/multi: %q", logs)
	}

	// Indexed: one pod per index, each seeing its own.
	k.Must(t, c, "wait", "--for=condition=complete", "job/indexed", "--timeout=60s")
	var indexes []string
	for _, p := range jobPods(t, c, "indexed") {
		indexes = append(indexes, strings.TrimSpace(k.Must(t, c, "logs", p.Name)))
	}
	sort.Strings(indexes)
	if strings.Join(indexes, " ") != "index=0 index=1 index=2" {
		t.Errorf("indexed job logs: %v", indexes)
	}
	if got := k.Must(t, c, "get", "job", "indexed", "-o", "jsonpath={.status.completedIndexes}"); got != "0-2" {
		t.Errorf("completedIndexes %q", got)
	}

	// Two failures with backoffLimit 1: failed, with the reason shown.
	k.Must(t, c, "wait", "--for=condition=failed", "job/fails", "--timeout=60s")
	desc := k.Must(t, c, "describe", "job", "fails")
	for _, want := range []string{"BackoffLimitExceeded", "0 Succeeded / 2 Failed"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe job fails lacks %q:\n%s", want, desc)
		}
	}
	if n := len(jobPods(t, c, "fails")); n != 2 {
		t.Errorf("failing job made %d pods, want 2 (one retry)", n)
	}

	// kubectl delete job takes its pods (their tracking finalizers are
	// released).
	k.Must(t, c, "delete", "job", "multi")
	framework.Eventually(t, 30*time.Second, "pods of deleted job gone", func() bool { return len(jobPods(t, c, "multi")) == 0 })

	// The CronJob fired at the top of a minute and its job completed.
	framework.Eventually(t, 90*time.Second, "cronjob fired and its job completed", func() bool {
		return strings.TrimSpace(k.Must(t, c, "get", "cronjob", "minutely", "-o", "jsonpath={.status.lastSuccessfulTime}")) != ""
	})
	jobs, err := c.Client().BatchV1().Jobs("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fired := 0
	for _, j := range jobs.Items {
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.Kind == "CronJob" && ref.Name == "minutely" {
			fired++
			sched, err := time.Parse(time.RFC3339, j.Annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"])
			if err != nil || sched.Second() != 0 || j.CreationTimestamp.Sub(sched) > 5*time.Second {
				t.Errorf("job %s scheduled %q created %v: not on schedule", j.Name, j.Annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"], j.CreationTimestamp)
			}
		}
	}
	if fired == 0 {
		t.Error("no job of the cronjob found")
	}
	if out := k.Must(t, c, "get", "cronjob", "minutely"); !strings.Contains(out, "* * * * *") {
		t.Errorf("kubectl get cronjob:\n%s", out)
	}

	// A finished job with ttlSecondsAfterFinished goes by itself.
	k.MustIn(t, c, jobYAML("ttl", "  ttlSecondsAfterFinished: 1", "true"), "create", "-f", "-")
	framework.Eventually(t, 60*time.Second, "job ttl deleted after finishing", func() bool {
		r := k.Run(c, "", nil, "get", "job", "ttl")
		return r.Err != nil && strings.Contains(r.Stderr, "NotFound")
	})
	framework.Eventually(t, 30*time.Second, "pods of job ttl gone", func() bool { return len(jobPods(t, c, "ttl")) == 0 })
}
