package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// RolloutSample is a Deployment's rollout at one moment: its ready pods
// (not being deleted) of the old template and of the new one.
type RolloutSample struct {
	At       time.Duration
	Old, New int32
}

// TimeRollout sets the image of the first container of Deployment ns/name
// and waits until the rollout is complete (every replica updated and
// available), sampling ready pods every interval. It returns how long the
// rollout took and the samples.
func TimeRollout(ctx context.Context, cs kubernetes.Interface, ns, name, image string, every time.Duration) (time.Duration, []RolloutSample, error) {
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, nil, err
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []map[string]string{{"name": d.Spec.Template.Spec.Containers[0].Name, "image": image}},
	}}}})
	if err != nil {
		return 0, nil, err
	}
	t0 := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return 0, nil, err
	}
	sel := metav1.FormatLabelSelector(d.Spec.Selector)
	var samples []RolloutSample
	for next := t0; ; next = next.Add(every) {
		time.Sleep(time.Until(next))
		s := RolloutSample{At: time.Since(t0)}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return 0, nil, err
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || !podReady(&p) {
				continue
			}
			if p.Spec.Containers[0].Image == image {
				s.New++
			} else {
				s.Old++
			}
		}
		samples = append(samples, s)
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return 0, nil, err
		}
		n := *d.Spec.Replicas
		st := d.Status
		if st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == n && st.Replicas == n && st.AvailableReplicas == n && s.Old == 0 {
			return time.Since(t0), samples, nil
		}
		if time.Since(t0) > 10*time.Minute {
			return 0, samples, fmt.Errorf("rollout of %s/%s not complete after 10 minutes", ns, name)
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// RolloutChart renders samples as a markdown table of ready old and new
// pods over time with a bar per row (about rows lines).
func RolloutChart(samples []RolloutSample, rows int) string {
	var b strings.Builder
	b.WriteString("| t (s) | old ready | new ready | |\n|---|---|---|---|\n")
	step := max(1, len(samples)/rows)
	var most int32
	for _, s := range samples {
		most = max(most, s.Old+s.New)
	}
	for i := 0; i < len(samples); i += step {
		s := samples[i]
		if i+step >= len(samples) {
			s = samples[len(samples)-1]
		}
		bar := func(n int32, c string) string {
			if most == 0 {
				return ""
			}
			return strings.Repeat(c, int(n*40/most))
		}
		fmt.Fprintf(&b, "| %.1f | %d | %d | `%s%s` |\n", s.At.Seconds(), s.Old, s.New, bar(s.Old, "o"), bar(s.New, "#"))
	}
	return b.String()
}
