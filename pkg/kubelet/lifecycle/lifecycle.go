// Package lifecycle runs containers' postStart and preStop hooks (exec,
// httpGet and sleep actions) for the kubelet, with upstream's semantics
// and messages: an exec hook fails when its command exits non-zero, an
// httpGet hook only when no HTTP answer comes (its status code is not
// looked at), and an HTTPS hook answered in plain HTTP is retried over
// HTTP with a LifecycleHTTPFallback event.
//
// The kubelet decides what a failure means: a failed postStart hook kills
// the container (FailedPostStartHook), a failed preStop hook is reported
// (FailedPreStopHook) and the container is stopped anyway.
package lifecycle

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/kubelet/prober"
)

// Recorder records an event about a pod.
type Recorder func(pod *corev1.Pod, c *corev1.Container, eventType, reason, message string)

// Runner runs lifecycle hooks.
type Runner struct {
	exec      prober.CommandRunner
	client    *http.Client
	clock     clock.Clock
	userAgent string
	recorder  Recorder
}

// Config configures a Runner.
type Config struct {
	// Exec runs exec hooks in the container (required).
	Exec prober.CommandRunner
	// UserAgent is sent with httpGet hooks ("kube-lifecycle/1.33").
	UserAgent string
	// Clock times sleep hooks; default real time.
	Clock clock.Clock
	// Recorder records LifecycleHTTPFallback events (optional).
	Recorder Recorder
}

// New returns a Runner.
func New(cfg Config) *Runner {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Recorder == nil {
		cfg.Recorder = func(*corev1.Pod, *corev1.Container, string, string, string) {}
	}
	return &Runner{
		exec:      cfg.Exec,
		clock:     cfg.Clock,
		userAgent: cfg.UserAgent,
		recorder:  cfg.Recorder,
		client: &http.Client{
			Transport: &http.Transport{
				TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // hooks do not verify, as upstream
				DisableKeepAlives: true,
				DialContext:       prober.Dialer().DialContext,
			},
			CheckRedirect: prober.RedirectChecker,
		},
	}
}

// Run runs hook h against t's container until it finishes or ctx ends.
// On failure it returns the message for the container's event beside the
// error.
func (r *Runner) Run(ctx context.Context, t prober.Target, h *corev1.LifecycleHandler) (string, error) {
	c := t.Container
	switch {
	case h.Exec != nil:
		stdout, stderr, err := r.exec.ExecSync(ctx, rawID(t.ContainerID), h.Exec.Command, 0)
		if err != nil {
			return fmt.Sprintf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %v, message: %q",
				h.Exec.Command, c.Name, podName(t.Pod), err, string(append(stdout, stderr...))), err
		}
		return "", nil
	case h.HTTPGet != nil:
		if err := r.runHTTP(ctx, t, h.HTTPGet); err != nil {
			return fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %v",
				h.HTTPGet.Path, c.Name, podName(t.Pod), err), err
		}
		return "", nil
	case h.Sleep != nil:
		select {
		case <-r.clock.After(time.Duration(h.Sleep.Seconds) * time.Second):
			return "", nil
		case <-ctx.Done():
			err := ctx.Err()
			return fmt.Sprintf("Sleep lifecycle hook (%d) for Container %q in Pod %q failed - error: %v",
				h.Sleep.Seconds, c.Name, podName(t.Pod), err), err
		}
	}
	err := fmt.Errorf("invalid handler: %v", h)
	return fmt.Sprintf("Cannot run handler: %v", err), err
}

func (r *Runner) runHTTP(ctx context.Context, t prober.Target, get *corev1.HTTPGetAction) error {
	req, err := prober.NewHTTPGetRequest(get, t.Container, t.PodIP, r.userAgent)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req.WithContext(ctx))
	discard(resp)
	if err == nil || !isHTTPResponseError(err) {
		return err
	}
	// An HTTPS hook answered in plain HTTP: retry over HTTP, as upstream.
	req = req.Clone(ctx)
	req.URL.Scheme = "http"
	req.Header.Del("Authorization")
	resp, httpErr := r.client.Do(req)
	discard(resp)
	if httpErr != nil {
		return err
	}
	r.recorder(t.Pod, nil, corev1.EventTypeWarning, "LifecycleHTTPFallback",
		fmt.Sprintf("request to HTTPS lifecycle hook %s got HTTP response, retry with HTTP succeeded", req.URL.Host))
	return nil
}

func isHTTPResponseError(err error) bool {
	var re tls.RecordHeaderError
	if errors.As(err, &re) && re.Conn != nil {
		return true
	}
	return strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

func discard(resp *http.Response) {
	if resp == nil {
		return
	}
	// Read a little so the connection can close cleanly.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
}

func rawID(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		return id[i+3:]
	}
	return id
}

func podName(p *corev1.Pod) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s_%s(%s)", p.Name, p.Namespace, p.UID)
}
