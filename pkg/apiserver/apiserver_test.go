package apiserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/skiff/skiff/pkg/server/servertest"
)

func TestConflictsAndNames(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	cms := srv.Client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cm.Name, "gen-") || len(cm.Name) != len("gen-")+5 || cm.UID == "" || cm.CreationTimestamp.IsZero() {
		t.Fatalf("server-set metadata: %+v", cm.ObjectMeta)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cm.Name}}, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("duplicate create: %v", err)
	}
	stale := cm.DeepCopy()
	cm.Data = map[string]string{"a": "1"}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stale.Data = map[string]string{"a": "2"}
	if _, err := cms.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v, want 409 Conflict", err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "Bad_Name"}}, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("invalid name: %v", err)
	} else if st := err.(apierrors.APIStatus).Status(); st.Details == nil || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "metadata.name" {
		t.Fatalf("invalid name causes: %+v", st.Details)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{}, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "name or generateName is required") {
		t.Fatalf("missing name: %v", err)
	}
}

func TestNamespaceLifecycle(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	_, err := srv.Client.CoreV1().ConfigMaps("nowhere").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `namespaces "nowhere" not found`) {
		t.Fatalf("create in missing namespace: %v", err)
	}
	if _, err := srv.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err := srv.Client.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if err != nil || ns.Status.Phase != corev1.NamespaceTerminating || ns.DeletionTimestamp == nil {
		t.Fatalf("deleted namespace should be Terminating: %v %+v", err, ns.Status)
	}
	_, err = srv.Client.CoreV1().ConfigMaps("doomed").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "because it is being terminated") {
		t.Fatalf("create in terminating namespace: %v", err)
	}
	if err := srv.Client.CoreV1().Namespaces().Delete(ctx, "default", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("deleting default: %v", err)
	}
	// Emptying spec.finalizers through finalize removes the namespace.
	ns.Spec.Finalizers = nil
	if _, err := srv.Client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("finalized namespace still there: %v", err)
	}
}

func TestPatchTypes(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	cms := srv.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "1"}}, Data: map[string]string{"x": "1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		typ   types.PatchType
		patch string
		check func(*corev1.ConfigMap) bool
	}{
		{types.MergePatchType, `{"data":{"y":"2"}}`, func(c *corev1.ConfigMap) bool { return c.Data["x"] == "1" && c.Data["y"] == "2" }},
		{types.StrategicMergePatchType, `{"metadata":{"labels":{"b":"2"}}}`, func(c *corev1.ConfigMap) bool { return c.Labels["a"] == "1" && c.Labels["b"] == "2" }},
		{types.JSONPatchType, `[{"op":"remove","path":"/data/x"}]`, func(c *corev1.ConfigMap) bool { _, ok := c.Data["x"]; return !ok }},
	}
	for _, tc := range cases {
		got, err := cms.Patch(ctx, "p", tc.typ, []byte(tc.patch), metav1.PatchOptions{})
		if err != nil || !tc.check(got) {
			t.Fatalf("%s patch: %v %+v", tc.typ, err, got)
		}
	}
	_, err := cms.Patch(ctx, "p", types.JSONPatchType, []byte(`[{"op":"test","path":"/data/y","value":"nope"}]`), metav1.PatchOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("failing JSON patch test op: %v, want 422", err)
	}
	_, err = cms.Patch(ctx, "p", types.MergePatchType, []byte(`{not json`), metav1.PatchOptions{})
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("malformed patch: %v, want 400", err)
	}
	_, err = cms.Patch(ctx, "missing", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("patch of missing object: %v", err)
	}
}

func rawRequest(t *testing.T, srv *servertest.Server, method, path, contentType string, body []byte) (int, string, http.Header) {
	t.Helper()
	tr, err := rest.TransportFor(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, srv.Config.Host+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestBadInputShapes(t *testing.T) {
	srv := servertest.Start(t)
	code, body, _ := rawRequest(t, srv, "POST", "/api/v1/namespaces/default/configmaps", "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap",`))
	if code != 400 || !strings.Contains(body, `"kind":"Status"`) {
		t.Fatalf("undecodable body: %d %s", code, body)
	}
	big := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":%q}}`, strings.Repeat("x", 3<<20+10))
	code, body, _ = rawRequest(t, srv, "POST", "/api/v1/namespaces/default/configmaps", "application/json", []byte(big))
	if code != 413 || !strings.Contains(body, "RequestEntityTooLarge") {
		t.Fatalf("oversized body: %d %s", code, body[:min(len(body), 200)])
	}
	code, body, _ = rawRequest(t, srv, "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s"},"bogus":1}`))
	if code != 400 || !strings.Contains(body, `unknown field \"bogus\"`) {
		t.Fatalf("strict validation: %d %s", code, body)
	}
	code, _, hdr := rawRequest(t, srv, "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Warn", "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"w"},"bogus":1}`))
	if code != 201 || !strings.Contains(hdr.Get("Warning"), `unknown field \"bogus\"`) {
		t.Fatalf("warn validation: %d warning %q", code, hdr.Get("Warning"))
	}
	// A huge unknown field name under the default (Warn) validation: the
	// object is created and the reply stays well-formed, its warning capped.
	huge := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"huge-field"},%q:1}`, strings.Repeat("f", 1<<20))
	code, body, hdr = rawRequest(t, srv, "POST", "/api/v1/namespaces/default/configmaps", "application/json", []byte(huge))
	if code != 201 || !strings.Contains(body, `"name":"huge-field"`) {
		t.Fatalf("huge unknown field: %d %.200s", code, body)
	}
	if ws := hdr.Values("Warning"); len(ws) != 1 || len(ws[0]) > 300 || !strings.HasPrefix(ws[0], `299 - "unknown field \"ffff`) {
		t.Fatalf("huge unknown field: warnings %.300q, want one truncated to 256 characters", ws)
	}
	code, body, _ = rawRequest(t, srv, "POST", "/api/v1/namespaces/default/configmaps", "application/json", []byte(`{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"v"}}`))
	if code != 400 || !strings.Contains(body, "does not match the expected API version") {
		t.Fatalf("wrong apiVersion: %d %s", code, body)
	}
	code, body, _ = rawRequest(t, srv, "GET", "/api/v1/namespaces/default/configmaps?fieldSelector=spec.nope%3Dx", "", nil)
	if code != 400 || !strings.Contains(body, "field label not supported: spec.nope") {
		t.Fatalf("unsupported field selector: %d %s", code, body)
	}
	code, body, _ = rawRequest(t, srv, "GET", "/api/v1/nonsense", "", nil)
	if code != 404 || !strings.Contains(body, `"kind":"Status"`) {
		t.Fatalf("unknown resource: %d %s", code, body)
	}
}

func TestUnauthenticatedIsRejected(t *testing.T) {
	srv := servertest.Start(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, path := range []string{"/api/v1/namespaces", "/readyz", "/version", "/apis"} {
		resp, err := client.Get(srv.Config.Host + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), "Unauthorized") {
			t.Fatalf("%s without credentials: %d %s", path, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("GET", srv.Config.Host+"/api/v1/namespaces", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
}

func TestPaginationMetadataAndProtobuf(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	cfg := rest.CopyConfig(srv.Config)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
	pb := kubernetes.NewForConfigOrDie(cfg)
	for i := 0; i < 30; i++ {
		if _, err := pb.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%02d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := metav1.ListOptions{Limit: 7}
	for {
		l, err := pb.CoreV1().ConfigMaps("default").List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range l.Items {
			names = append(names, c.Name)
		}
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	if len(names) != 30 {
		t.Fatalf("paged %d names", len(names))
	}
	md := metadata.NewForConfigOrDie(srv.Config)
	ml, err := md.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(ml.Items) != 30 || ml.Items[0].Name != "c00" {
		t.Fatalf("metadata list: %v", err)
	}
	if err := srv.Client.CoreV1().ConfigMaps("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := srv.Client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 0 {
		t.Fatalf("after deletecollection: %v %d", err, len(l.Items))
	}
}

func TestDryRun(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	cms := srv.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run create persisted: %v", err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "wet"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "wet", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "wet", metav1.GetOptions{}); err != nil {
		t.Fatalf("dry-run delete deleted: %v", err)
	}
}

func TestFinalizersAndPropagation(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	cms := srv.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "f", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	orphan := metav1.DeletePropagationOrphan
	if err := cms.Delete(ctx, "f", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	cm, err := cms.Get(ctx, "f", metav1.GetOptions{})
	if err != nil || cm.DeletionTimestamp == nil || !slices.Contains(cm.Finalizers, metav1.FinalizerOrphanDependents) {
		t.Fatalf("delete with a finalizer should only mark: %v %+v", err, cm.ObjectMeta)
	}
	cm.Finalizers = append(cm.Finalizers, "example.com/new")
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("adding a finalizer while deleting: %v", err)
	}
	cm, _ = cms.Get(ctx, "f", metav1.GetOptions{})
	cm.Finalizers = nil
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "f", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("removing the last finalizer should delete: %v", err)
	}
}
