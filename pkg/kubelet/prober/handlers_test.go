package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	remote "k8s.io/cri-client/pkg"
	utilexec "k8s.io/utils/exec"
)

const ua = "kube-probe/1.33"

// target points a probe at the host and port of a test server, the port
// named "http" on the container.
func target(t *testing.T, rawURL string) Target {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	return Target{
		Pod:         &corev1.Pod{},
		Container:   &corev1.Container{Name: "main", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}},
		ContainerID: "skiff://abc",
		PodIP:       u.Hostname(),
	}
}

func httpProbe(path string, port intstr.IntOrString, scheme corev1.URIScheme, headers ...corev1.HTTPHeader) *corev1.Probe {
	return &corev1.Probe{TimeoutSeconds: 1, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: path, Port: port, Scheme: scheme, HTTPHeaders: headers,
	}}}
}

func TestHTTPProbe(t *testing.T) {
	var lastReq *http.Request
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { lastReq = r; fmt.Fprint(w, "fine") })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	mux.HandleFunc("/notfound", http.NotFound)
	mux.HandleFunc("/redirect-local", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/redirect-away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tls := httptest.NewTLSServer(mux)
	defer tls.Close()
	p := NewProber(nil, ua)
	named := intstr.FromString("http")
	cases := []struct {
		name    string
		url     string
		spec    *corev1.Probe
		result  Result
		warning bool
		output  string
	}{
		{"200 by named port", srv.URL, httpProbe("/ok", named, ""), Success, false, "fine"},
		{"500", srv.URL, httpProbe("/fail", named, ""), Failure, false, "HTTP probe failed with statuscode: 500"},
		{"404", srv.URL, httpProbe("/notfound", named, ""), Failure, false, "HTTP probe failed with statuscode: 404"},
		{"redirect on the same host is followed", srv.URL, httpProbe("/redirect-local", named, ""), Success, false, "fine"},
		{"redirect to another host stops with a warning", srv.URL, httpProbe("/redirect-away", named, ""), Success, true, "Probe terminated redirects, Response body: "},
		{"HTTPS without verification", tls.URL, httpProbe("/ok", named, corev1.URISchemeHTTPS), Success, false, "fine"},
		{"timeout", srv.URL, httpProbe("/slow", named, ""), Failure, false, "Client.Timeout exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := p.Probe(context.Background(), tc.spec, target(t, tc.url))
			if err != nil {
				t.Fatal(err)
			}
			if out.Result != tc.result || out.Warning != tc.warning || !strings.Contains(out.Output, tc.output) {
				t.Fatalf("got %+v, want %v warning=%v output containing %q", out, tc.result, tc.warning, tc.output)
			}
		})
	}
	t.Run("headers", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
		n, _ := strconv.Atoi(port)
		spec := httpProbe("/ok?x=1", intstr.FromInt(n), "", corev1.HTTPHeader{Name: "X-Custom", Value: "a"}, corev1.HTTPHeader{Name: "Host", Value: "example.com"})
		if out, _ := p.Probe(context.Background(), spec, target(t, srv.URL)); out.Result != Success {
			t.Fatalf("%+v", out)
		}
		if got := lastReq.Header.Get("User-Agent"); got != ua {
			t.Errorf("User-Agent %q", got)
		}
		if got := lastReq.Header.Get("Accept"); got != "*/*" {
			t.Errorf("Accept %q", got)
		}
		if lastReq.Header.Get("X-Custom") != "a" || lastReq.Host != "example.com" || lastReq.URL.RawQuery != "x=1" {
			t.Errorf("request %v %s %s", lastReq.Header, lastReq.Host, lastReq.URL)
		}
		spec = httpProbe("/ok", intstr.FromInt(n), "", corev1.HTTPHeader{Name: "User-Agent", Value: "mine"}, corev1.HTTPHeader{Name: "Accept", Value: ""})
		_, _ = p.Probe(context.Background(), spec, target(t, srv.URL))
		if got := lastReq.Header.Get("User-Agent"); got != "mine" {
			t.Errorf("User-Agent %q, want the probe's own", got)
		}
		if _, ok := lastReq.Header["Accept"]; ok {
			t.Errorf("an empty Accept header was sent: %v", lastReq.Header)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		out, err := p.Probe(context.Background(), httpProbe("/", intstr.FromString("http"), ""), target(t, "http://"+addr))
		if err != nil || out.Result != Failure || !strings.Contains(out.Output, "connection refused") {
			t.Fatalf("%+v %v", out, err)
		}
	})
	t.Run("unknown port name is an error", func(t *testing.T) {
		_, err := p.Probe(context.Background(), httpProbe("/", intstr.FromString("metrics"), ""), target(t, srv.URL))
		if err == nil {
			t.Fatal("no error")
		}
	})
}

func TestResolvePort(t *testing.T) {
	c := &corev1.Container{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
	cases := []struct {
		port intstr.IntOrString
		want int
		err  bool
	}{
		{intstr.FromInt(80), 80, false},
		{intstr.FromString("http"), 8080, false},
		{intstr.FromString("9090"), 9090, false},
		{intstr.FromString("grpc"), 0, true},
		{intstr.FromInt(0), 0, true},
		{intstr.FromInt(70000), 0, true},
	}
	for _, tc := range cases {
		got, err := ResolvePort(tc.port, c)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ResolvePort(%v) = %d, %v; want %d (error %v)", tc.port.String(), got, err, tc.want, tc.err)
		}
	}
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	p := NewProber(nil, ua)
	spec := &corev1.Probe{TimeoutSeconds: 1, ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}}
	if out, err := p.Probe(context.Background(), spec, target(t, "http://"+l.Addr().String())); err != nil || out.Result != Success {
		t.Fatalf("open port: %+v %v", out, err)
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	if out, err := p.Probe(context.Background(), spec, target(t, "http://"+addr)); err != nil || out.Result != Failure {
		t.Fatalf("closed port: %+v %v", out, err)
	}
}

// fakeExec answers ExecSync as the CRI client does.
type fakeExec struct {
	stdout, stderr string
	err            error
	gotID          string
	gotCmd         []string
	gotTimeout     time.Duration
}

func (f *fakeExec) ExecSync(_ context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	f.gotID, f.gotCmd, f.gotTimeout = id, cmd, timeout
	return []byte(f.stdout), []byte(f.stderr), f.err
}

func TestExecProbe(t *testing.T) {
	spec := &corev1.Probe{TimeoutSeconds: 3, ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}}}
	cases := []struct {
		name   string
		exec   fakeExec
		result Result
		output string
		err    bool
	}{
		{"exit 0", fakeExec{stdout: "ok\n"}, Success, "ok\n", false},
		{"exit 1", fakeExec{stderr: "cat: can't open '/tmp/healthy': No such file or directory\n",
			err: utilexec.CodeExitError{Err: errors.New("command 'cat /tmp/healthy' exited with 1"), Code: 1}},
			Failure, "cat: can't open '/tmp/healthy': No such file or directory\n", false},
		{"timeout", fakeExec{err: fmt.Errorf("%w: %q timed out after 3s", remote.ErrCommandTimedOut, "cat /tmp/healthy")},
			Failure, `command timed out: "cat /tmp/healthy" timed out after 3s`, false},
		{"runtime error", fakeExec{err: errors.New("container is not running")}, Unknown, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fe := tc.exec
			out, err := NewProber(&fe, ua).Probe(context.Background(), spec, Target{Container: &corev1.Container{}, ContainerID: "skiff://abc"})
			if (err != nil) != tc.err || out.Result != tc.result || out.Output != tc.output {
				t.Fatalf("got %+v, %v; want %v %q (error %v)", out, err, tc.result, tc.output, tc.err)
			}
			if fe.gotID != "abc" || fe.gotTimeout != 3*time.Second || strings.Join(fe.gotCmd, " ") != "cat /tmp/healthy" {
				t.Fatalf("ExecSync(%q, %q, %v)", fe.gotID, fe.gotCmd, fe.gotTimeout)
			}
		})
	}
}

func TestGRPCProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(port)
	probe := func(service *string, port int) *corev1.Probe {
		return &corev1.Probe{TimeoutSeconds: 1, ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port), Service: service}}}
	}
	db, missing := "db", "missing"
	p := NewProber(nil, ua)
	tgt := Target{Container: &corev1.Container{}, PodIP: "127.0.0.1"}
	cases := []struct {
		name   string
		spec   *corev1.Probe
		result Result
		output string
	}{
		{"serving", probe(nil, n), Success, "service healthy"},
		{"not serving", probe(&db, n), Failure, `service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", probe(&missing, n), Failure, "error: health rpc probe failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := p.Probe(context.Background(), tc.spec, tgt)
			if err != nil || out.Result != tc.result || !strings.Contains(out.Output, tc.output) {
				t.Fatalf("got %+v %v; want %v %q", out, err, tc.result, tc.output)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		closed, _ := net.Listen("tcp", "127.0.0.1:0")
		_, cport, _ := net.SplitHostPort(closed.Addr().String())
		closed.Close()
		cn, _ := strconv.Atoi(cport)
		out, err := p.Probe(context.Background(), probe(nil, cn), tgt)
		if err != nil || out.Result != Failure {
			t.Fatalf("got %+v %v", out, err)
		}
	})
}
