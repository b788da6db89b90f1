package serviceaccount_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/server/servertest"
)

func TestEveryNamespaceHasADefaultServiceAccount(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		if _, err := srv.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Errorf("system namespace %s: %v", ns, err)
		}
	}
	if _, err := srv.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The account exists by the time the namespace create is answered.
	sa, err := srv.Client.CoreV1().ServiceAccounts("team-a").Get(ctx, "default", metav1.GetOptions{})
	if err != nil || sa.Name != "default" {
		t.Fatalf("new namespace: %v %+v", err, sa)
	}
	if _, err := srv.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if list, err := srv.Client.CoreV1().ServiceAccounts("dry").List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Fatalf("dry-run namespace got accounts: %v %+v", err, list)
	}
}
