package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/pkg/server"
	"github.com/skiff/skiff/pkg/server/servertest"
)

// TestEventsExpire runs the server with a short event TTL: an event is
// deleted by etcd once it expires, and watches of both event APIs, served
// from the watch cache, see it DELETED; other resources do not expire.
func TestEventsExpire(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.EventTTL = 2 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := srv.Client
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The lease is granted during the create, so after this.
	beforeCreate := time.Now()
	ev, err := cs.CoreV1().Events("default").Create(ctx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "brief"}, InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Namespace: "default", Name: "kept"},
		Reason: "Testing", Message: "expires soon", Type: corev1.EventTypeNormal, Count: 1, Source: corev1.EventSource{Component: "test"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := metav1.ListOptions{ResourceVersion: ev.ResourceVersion}
	coreW, err := cs.CoreV1().Events("default").Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer coreW.Stop()
	v1W, err := cs.EventsV1().Events("default").Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v1W.Stop()
	for _, w := range []watch.Interface{coreW, v1W} {
		select {
		case e, ok := <-w.ResultChan():
			if !ok || e.Type != watch.Deleted {
				t.Fatalf("got %v %v, want the event DELETED", e.Type, ok)
			}
			if name := e.Object.(metav1.Object).GetName(); name != "brief" {
				t.Fatalf("%s deleted, want brief", name)
			}
		case <-ctx.Done():
			t.Fatal("event with a 2s TTL not deleted")
		}
	}
	if age := time.Since(beforeCreate); age < 2*time.Second {
		t.Fatalf("event deleted after %v, before its TTL of 2s", age)
	}
	if list, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Fatalf("events after expiry: %v %+v", err, list)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Fatalf("configmap expired with the event: %v", err)
	}
}

func TestApplyKubeAPIServerArgs(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    time.Duration
		wantErr string
	}{
		{args: nil, want: 0},
		{args: []string{"event-ttl=3s"}, want: 3 * time.Second},
		{args: []string{"--event-ttl=90m"}, want: 90 * time.Minute},
		{args: []string{"event-ttl=0"}, wantErr: "must be at least 1s"},
		{args: []string{"event-ttl=500ms"}, wantErr: "must be at least 1s"},
		{args: []string{"event-ttl=soon"}, wantErr: "invalid argument"},
		{args: []string{"audit-log-path=/tmp/audit"}, wantErr: "unknown flag: --audit-log-path (supported: default-not-ready-toleration-seconds, default-unreachable-toleration-seconds, event-ttl)"},
	} {
		var c server.Config
		err := c.ApplyKubeAPIServerArgs(tc.args)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--kube-apiserver-arg") {
				t.Errorf("%q: got %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
		case err != nil || c.EventTTL != tc.want:
			t.Errorf("%q: got %v, %v; want %v", tc.args, c.EventTTL, err, tc.want)
		}
	}
}
