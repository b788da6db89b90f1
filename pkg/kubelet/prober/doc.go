// Package prober runs containers' startup, liveness and readiness probes
// for the kubelet, as upstream's kubelet does.
//
// A Manager holds one worker goroutine per (pod, container, probe kind).
// A worker probes its container every periodSeconds (the first run
// jittered within a period while the kubelet has just started, so a
// restarted kubelet does not probe every container at once), skips the
// container's first initialDelaySeconds, and turns runs of
// successThreshold successes or failureThreshold failures into a Result
// kept per container ID. The startup probe gates the other two: they do
// not run until it has succeeded.
//
// The kubelet reads the results: Started and Ready fill the container's
// status (and so the pod's Ready condition), and Failed tells it to kill a
// container whose liveness or startup probe failed. Whenever a result
// changes, the Manager calls Config.OnChange so the kubelet syncs the pod
// without waiting for its next resync.
//
// Probe actions (httpGet, tcpSocket, exec through the CRI's ExecSync, and
// gRPC health checking) are run by a Handler; Prober is the real one.
// Time comes from an injected clock, so workers are tested with a fake
// clock and a fake Handler.
package prober
