package secret_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/server/servertest"
)

func TestSecretTypes(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	secrets := srv.Client.CoreV1().Secrets("default")

	_, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls"}, Type: corev1.SecretTypeTLS, StringData: map[string]string{"tls.crt": "cert"}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "data[tls.key]: Required value") {
		t.Fatalf("tls secret without key: %v", err)
	}
	_, err = secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pull"}, Type: corev1.SecretTypeDockerConfigJson, StringData: map[string]string{".dockerconfigjson": "nope"}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "data[.dockerconfigjson]") {
		t.Fatalf("invalid docker config: %v", err)
	}
	opaque, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, StringData: map[string]string{"password": "hunter2"}}, metav1.CreateOptions{})
	if err != nil || opaque.Type != corev1.SecretTypeOpaque || string(opaque.Data["password"]) != "hunter2" || opaque.StringData != nil {
		t.Fatalf("opaque: %v %+v", err, opaque)
	}
	if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "auth"}, Type: corev1.SecretTypeBasicAuth, StringData: map[string]string{"username": "u"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	opaque.Type = corev1.SecretTypeBasicAuth
	if _, err := secrets.Update(ctx, opaque, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "type: Invalid value") {
		t.Fatalf("type change: %v", err)
	}
	list, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(corev1.SecretTypeBasicAuth)})
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "auth" {
		t.Fatalf("type field selector: %v %+v", err, list)
	}
}
