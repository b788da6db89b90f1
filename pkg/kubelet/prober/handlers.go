package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcstatus "google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	remote "k8s.io/cri-client/pkg"
)

// maxOutput bounds the response body or command output a probe keeps for
// its event, as upstream's 10 KiB.
const maxOutput = 10 << 10

// CommandRunner runs a command in a running container and returns its
// output; a non-zero exit is an error with an ExitStatus() method. The
// CRI client (k8s.io/cri-api's RuntimeService) is one.
type CommandRunner interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, err error)
}

// Target is the container a probe or hook acts on.
type Target struct {
	Pod       *corev1.Pod
	Container *corev1.Container
	// ContainerID is the CRI container ID (with or without a
	// "runtime://" prefix).
	ContainerID string
	// PodIP is the default host of httpGet, tcpSocket and grpc actions.
	PodIP string
}

// Outcome is what one run of a probe action found.
type Outcome struct {
	Result Result
	// Output is the detail shown in the event: a response body, command
	// output, or what went wrong.
	Output string
	// Warning marks a success with something to report (an HTTP probe
	// that stopped at a redirect to another host).
	Warning bool
}

// Handler runs one probe action against a container. An error means the
// probe could not be run at all (an unknown port name, say): its result is
// thrown away rather than counted as a failure.
type Handler interface {
	Probe(ctx context.Context, spec *corev1.Probe, t Target) (Outcome, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, spec *corev1.Probe, t Target) (Outcome, error)

// Probe calls f.
func (f HandlerFunc) Probe(ctx context.Context, spec *corev1.Probe, t Target) (Outcome, error) {
	return f(ctx, spec, t)
}

var _ Handler = (*Prober)(nil)

// Prober runs probe actions for real: HTTP GETs and TCP connections to the
// pod's address from the node, commands through the runtime, and gRPC
// health checks.
type Prober struct {
	exec      CommandRunner
	userAgent string
	transport *http.Transport
}

// NewProber returns a Prober that runs exec probes through exec and sends
// userAgent ("kube-probe/1.33") with HTTP and gRPC probes.
func NewProber(exec CommandRunner, userAgent string) *Prober {
	return &Prober{
		exec:      exec,
		userAgent: userAgent,
		// As upstream: no TLS verification, no proxy, no compression, and
		// a fresh connection per probe.
		transport: &http.Transport{
			TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes do not verify, as upstream
			DisableKeepAlives:  true,
			DisableCompression: true,
			Proxy:              nil,
			DialContext:        Dialer().DialContext,
		},
	}
}

// Probe runs spec's action against t with spec's timeout.
func (p *Prober) Probe(ctx context.Context, spec *corev1.Probe, t Target) (Outcome, error) {
	timeout := time.Duration(spec.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	switch {
	case spec.Exec != nil:
		return p.execProbe(ctx, spec.Exec.Command, t, timeout)
	case spec.HTTPGet != nil:
		req, err := NewHTTPGetRequest(spec.HTTPGet, t.Container, t.PodIP, p.userAgent)
		if err != nil {
			return Outcome{Result: Unknown}, err
		}
		return p.httpProbe(ctx, req, timeout), nil
	case spec.TCPSocket != nil:
		port, err := ResolvePort(spec.TCPSocket.Port, t.Container)
		if err != nil {
			return Outcome{Result: Unknown}, err
		}
		host := spec.TCPSocket.Host
		if host == "" {
			host = t.PodIP
		}
		return tcpProbe(ctx, net.JoinHostPort(host, strconv.Itoa(port)), timeout), nil
	case spec.GRPC != nil:
		service := ""
		if spec.GRPC.Service != nil {
			service = *spec.GRPC.Service
		}
		return p.grpcProbe(ctx, net.JoinHostPort(t.PodIP, strconv.Itoa(int(spec.GRPC.Port))), service, timeout), nil
	}
	return Outcome{Result: Unknown}, fmt.Errorf("missing probe handler for %s:%s", podName(t.Pod), t.Container.Name)
}

// execProbe runs cmd in the container: exit 0 is a success, any other
// exit or a timeout a failure.
func (p *Prober) execProbe(ctx context.Context, cmd []string, t Target, timeout time.Duration) (Outcome, error) {
	stdout, stderr, err := p.exec.ExecSync(ctx, rawID(t.ContainerID), cmd, timeout)
	out := limit(string(append(stdout, stderr...)))
	if err == nil {
		return Outcome{Result: Success, Output: out}, nil
	}
	var exit interface{ ExitStatus() int }
	if errors.As(err, &exit) {
		if exit.ExitStatus() == 0 {
			return Outcome{Result: Success, Output: out}, nil
		}
		return Outcome{Result: Failure, Output: out}, nil
	}
	if IsTimeout(err) {
		return Outcome{Result: Failure, Output: err.Error()}, nil
	}
	return Outcome{Result: Unknown}, err
}

// IsTimeout reports whether err says a command in a container ran out of
// time.
func IsTimeout(err error) bool {
	return errors.Is(err, remote.ErrCommandTimedOut) || errors.Is(err, context.DeadlineExceeded) ||
		grpcstatus.Code(err) == codes.DeadlineExceeded
}

// httpProbe GETs req: 200-399 is a success (a redirect to another host
// ends the probe with a warning), anything else or no answer a failure.
func (p *Prober) httpProbe(ctx context.Context, req *http.Request, timeout time.Duration) Outcome {
	client := &http.Client{Timeout: timeout, Transport: p.transport, CheckRedirect: RedirectChecker}
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		// Timeouts and refused connections are failures, not errors.
		return Outcome{Result: Failure, Output: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxOutput))
	body := string(b)
	switch {
	case resp.StatusCode >= http.StatusMultipleChoices && resp.StatusCode < http.StatusBadRequest:
		return Outcome{Result: Success, Warning: true, Output: "Probe terminated redirects, Response body: " + body}
	case resp.StatusCode >= http.StatusOK && resp.StatusCode < http.StatusMultipleChoices:
		return Outcome{Result: Success, Output: body}
	}
	// Worded so that it does not read as a URL (upstream issue 99425).
	return Outcome{Result: Failure, Output: fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)}
}

// RedirectChecker follows redirects on the same host (at most 10) and
// stops at one to another host, returning that response, as upstream's
// probes and HTTP hooks do.
func RedirectChecker(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// tcpProbe succeeds when a TCP connection to addr opens within timeout.
func tcpProbe(ctx context.Context, addr string, timeout time.Duration) Outcome {
	d := Dialer()
	d.Timeout = timeout
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Outcome{Result: Failure, Output: err.Error()}
	}
	_ = conn.Close()
	return Outcome{Result: Success}
}

// grpcProbe calls grpc.health.v1.Health/Check for service at addr.
func (p *Prober) grpcProbe(ctx context.Context, addr, service string, timeout time.Duration) Outcome {
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithUserAgent(p.userAgent),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return Dialer().DialContext(ctx, "tcp", a)
		}))
	if err != nil {
		return Outcome{Result: Failure, Output: fmt.Sprintf("error: failed to connect service at %q: %+v", addr, err)}
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		if st, ok := grpcstatus.FromError(err); ok {
			switch st.Code() {
			case codes.Unimplemented:
				return Outcome{Result: Failure, Output: "this server does not implement the grpc health protocol (grpc.health.v1.Health): " + st.Message()}
			case codes.DeadlineExceeded:
				return Outcome{Result: Failure, Output: fmt.Sprintf("timeout: health rpc did not complete within %v", timeout)}
			case codes.Unavailable:
				return Outcome{Result: Failure, Output: fmt.Sprintf("error: failed to connect service at %q: %+v", addr, err)}
			}
		}
		return Outcome{Result: Failure, Output: fmt.Sprintf("error: health rpc probe failed: %+v", err)}
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return Outcome{Result: Failure, Output: fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String())}
	}
	return Outcome{Result: Success, Output: "service healthy"}
}

// Dialer is the dialer of probes and hooks: it closes connections with a
// one-second linger, so that probing does not fill the node with sockets
// in TIME_WAIT (as upstream).
func Dialer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 1})
		})
	}}
}

// NewHTTPGetRequest builds the GET an httpGet probe or hook sends: to the
// action's host (the pod's address by default) and port (a number or the
// name of one of the container's ports), with its headers, a User-Agent of
// userAgent and Accept */* unless the action sets them.
func NewHTTPGetRequest(action *corev1.HTTPGetAction, c *corev1.Container, podIP, userAgent string) (*http.Request, error) {
	scheme := strings.ToLower(string(action.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := action.Host
	if host == "" {
		host = podIP
	}
	port, err := ResolvePort(action.Port, c)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(action.Path)
	if err != nil {
		// A path the API let through but url cannot parse: send it as is.
		u = &url.URL{Path: action.Path}
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	headers := http.Header{}
	for _, h := range action.HTTPHeaders {
		headers.Add(h.Name, h.Value)
	}
	if _, ok := headers["User-Agent"]; !ok {
		headers.Set("User-Agent", userAgent)
	}
	if _, ok := headers["Accept"]; !ok {
		headers.Set("Accept", "*/*")
	} else if headers.Get("Accept") == "" {
		// Set to empty: the user asked for no Accept header.
		headers.Del("Accept")
	}
	req.Header = headers
	req.Host = headers.Get("Host")
	return req, nil
}

// ResolvePort turns a probe's port into a number: a number as is, a name
// through the container's ports (or, failing that, a number written as a
// string).
func ResolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	n := -1
	switch port.Type {
	case intstr.Int:
		n = port.IntValue()
	case intstr.String:
		found := false
		if c != nil {
			for _, p := range c.Ports {
				if p.Name == port.StrVal {
					n, found = int(p.ContainerPort), true
					break
				}
			}
		}
		if !found {
			var err error
			if n, err = strconv.Atoi(port.StrVal); err != nil {
				return n, fmt.Errorf("port %s: %w", port.StrVal, err)
			}
		}
	default:
		return n, fmt.Errorf("intOrString had no kind: %+v", port)
	}
	if n > 0 && n < 65536 {
		return n, nil
	}
	return n, fmt.Errorf("invalid port number: %v", n)
}

func limit(s string) string {
	if len(s) > maxOutput {
		return s[:maxOutput]
	}
	return s
}

// podName formats a pod as upstream's logs and events do:
// name_namespace(uid).
func podName(p *corev1.Pod) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s_%s(%s)", p.Name, p.Namespace, p.UID)
}
