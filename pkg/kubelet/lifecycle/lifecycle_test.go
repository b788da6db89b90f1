package lifecycle

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"
	utilexec "k8s.io/utils/exec"

	"github.com/skiff/skiff/pkg/kubelet/prober"
)

type fakeExec struct {
	stdout, stderr string
	err            error
	got            []string
	gotID          string
}

func (f *fakeExec) ExecSync(_ context.Context, id string, cmd []string, _ time.Duration) ([]byte, []byte, error) {
	f.got, f.gotID = cmd, id
	return []byte(f.stdout), []byte(f.stderr), f.err
}

var pod = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1"}}

func TestExecHook(t *testing.T) {
	fe := &fakeExec{}
	r := New(Config{Exec: fe})
	h := &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo hi > /data/x"}}}
	tgt := prober.Target{Pod: pod, Container: &corev1.Container{Name: "main"}, ContainerID: "skiff://abc"}
	if msg, err := r.Run(context.Background(), tgt, h); err != nil || msg != "" {
		t.Fatalf("%q %v", msg, err)
	}
	if fe.gotID != "abc" || len(fe.got) != 3 {
		t.Fatalf("ExecSync(%q, %q)", fe.gotID, fe.got)
	}
	fe.stderr = "no such dir\n"
	fe.err = utilexec.CodeExitError{Err: errors.New("command 'sh -c echo hi > /data/x' exited with 2: no such dir"), Code: 2}
	msg, err := r.Run(context.Background(), tgt, h)
	want := `Exec lifecycle hook ([sh -c echo hi > /data/x]) for Container "main" in Pod "web_default(u1)" failed - error: command 'sh -c echo hi > /data/x' exited with 2: no such dir, message: "no such dir\n"`
	if err == nil || msg != want {
		t.Fatalf("got %q %v\nwant %q", msg, err, want)
	}
}

func TestHTTPHook(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		// Hooks do not look at the status code.
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	var events []string
	r := New(Config{Exec: &fakeExec{}, UserAgent: "kube-lifecycle/1.33", Recorder: func(_ *corev1.Pod, _ *corev1.Container, _, reason, msg string) {
		events = append(events, reason+": "+msg)
	}})
	c := &corev1.Container{Name: "main", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	tgt := prober.Target{Pod: pod, Container: c, PodIP: u.Hostname()}
	h := &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/shutdown", Port: intstr.FromString("http")}}
	if msg, err := r.Run(context.Background(), tgt, h); err != nil {
		t.Fatalf("%q %v", msg, err)
	}
	if got.URL.Path != "/shutdown" || got.Header.Get("User-Agent") != "kube-lifecycle/1.33" {
		t.Fatalf("request %s %v", got.URL, got.Header)
	}
	// HTTPS to a plain HTTP server falls back to HTTP.
	h.HTTPGet.Scheme = corev1.URISchemeHTTPS
	if msg, err := r.Run(context.Background(), tgt, h); err != nil {
		t.Fatalf("fallback: %q %v", msg, err)
	}
	if len(events) != 1 || !strings.HasPrefix(events[0], "LifecycleHTTPFallback: request to HTTPS lifecycle hook") {
		t.Fatalf("events %q", events)
	}
	// Nothing listening: a failure with upstream's message.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	_, cport, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	n, _ := strconv.Atoi(cport)
	h = &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/shutdown", Port: intstr.FromInt(n)}}
	msg, err := r.Run(context.Background(), prober.Target{Pod: pod, Container: c, PodIP: "127.0.0.1"}, h)
	if err == nil || !strings.HasPrefix(msg, `HTTP lifecycle hook (/shutdown) for Container "main" in Pod "web_default(u1)" failed - error: `) {
		t.Fatalf("%q %v", msg, err)
	}
}

func TestSleepHook(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	r := New(Config{Exec: &fakeExec{}, Clock: clk})
	h := &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(context.Background(), prober.Target{Pod: pod, Container: &corev1.Container{Name: "main"}}, h)
		done <- err
	}()
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	clk.Step(4 * time.Second)
	select {
	case <-done:
		t.Fatal("slept less than 5s")
	default:
	}
	clk.Step(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Cut short by the grace period (ctx).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Run(ctx, prober.Target{Pod: pod, Container: &corev1.Container{Name: "main"}}, h); err == nil {
		t.Fatal("no error when cut short")
	}
}
