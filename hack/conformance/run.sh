#!/usr/bin/env bash
# Runs Kubernetes' own conformance specs against a throw-away skiff cluster.
# See hack/conformance/README.md. Called by `make conformance`.
#
# Environment:
#   SMOKE=1        run only the specs in hack/conformance/smoke.txt
#   FOCUS=regexp   run the specs matching regexp (default: \[Conformance\])
#   SKIP=regexp    skip these (default: \[Serial\]|\[Disruptive\])
#   PROCS=N        parallel Ginkgo processes (default: 2 on this 2-core kind)
#   RESULTS=dir    where reports go (default hack/conformance/results)
#   GINKGO_ARGS=.. extra ginkgo flags (every run is -v: each spec's name,
#                  outcome and timeline are in e2e.log, from which the
#                  summary is made when no JSON report was written)
#   SKIFF_CONFORMANCE_CACHE  where built binaries are kept between runs
#                  (default /var/cache/skiff-conformance)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
skiff=$root/bin/skiff
results=${RESULTS:-$here/results}
procs=${PROCS:-2}
skip=${SKIP:-'\[Serial\]|\[Disruptive\]'}

log() { printf '%s conformance: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

[ -x "$skiff" ] || { log "no $skiff: run make build"; exit 1; }

# The suite's version is the one of our k8s.io modules (v0.X.Y -> v1.X.Y),
# and the wrapper module must pin the same.
api=$(cd "$root" && go list -m -f '{{.Version}}' k8s.io/api)
version=v1.${api#v0.}
pinned=$(cd "$here/suite" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
if [ "$pinned" != "$version" ]; then
	log "hack/conformance/suite requires k8s.io/kubernetes $pinned but skiff uses k8s.io/api $api: update the wrapper module"
	exit 1
fi
cache=${SKIFF_CONFORMANCE_CACHE:-/var/cache/skiff-conformance}/$version
mkdir -p "$cache"

# build NAME PACKAGE CMD... builds $cache/NAME from PACKAGE with CMD (go
# build or go test -c and their flags) once; later runs reuse it.
build() {
	local name=$1 pkg=$2
	shift 2
	[ -x "$cache/$name" ] && return 0
	log "building $name $version (first run only; e2e.test takes a while)"
	(cd "$here/suite" && "$@" -o "$cache/$name.tmp" "$pkg")
	mv "$cache/$name.tmp" "$cache/$name"
}
build e2e.test k8s.io/kubernetes/test/e2e go test -c -trimpath -ldflags '-s -w'
build agnhost k8s.io/kubernetes/test/images/agnhost env CGO_ENABLED=0 go build -trimpath -ldflags '-s -w'
build nonewprivs k8s.io/kubernetes/test/images/nonewprivs env CGO_ENABLED=0 go build -trimpath -ldflags '-s -w'
build ginkgo github.com/onsi/ginkgo/v2/ginkgo env CGO_ENABLED=0 go build -trimpath -ldflags '-s -w'

# The agnhost image carries dig, nc and friends, as upstream's does; they
# come from this machine's Debian packages.
if ! command -v dig >/dev/null || ! [ -x /usr/bin/nc ] || ! command -v getent >/dev/null; then
	log "installing the tools the agnhost image carries (bind9-dnsutils netcat-openbsd iperf)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q bind9-dnsutils netcat-openbsd iperf >/dev/null
fi

work=$(mktemp -d /tmp/skiff-conformance.XXXXXX)
data=$work/data
server_pid=
cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		log "stopping the cluster"
		kill -TERM "$server_pid" 2>/dev/null || true
		for _ in $(seq 60); do kill -0 "$server_pid" 2>/dev/null || break; sleep 1; done
		kill -KILL "$server_pid" 2>/dev/null || true
	fi
	if grep -q " $work/" /proc/self/mountinfo; then
		log "mounts left under $work (kept for inspection):"
		grep " $work/" /proc/self/mountinfo | awk '{print $5}' >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

log "packing images"
porter=$(cd "$here/suite" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/test/images/agnhost/porter
(cd "$root" && go run ./hack/conformance/images -agnhost "$cache/agnhost" -nonewprivs "$cache/nonewprivs" -porter "$porter" -out "$work/images.tar") >/dev/null
"$skiff" images import --data-dir "$data" "$work/images.tar" >/dev/null

# A port and CIDRs of its own, so the run sits beside any other cluster.
port=
for p in $(shuf -i 20000-29999 -n 50); do
	if ! ss -Hltn "sport = :$p" | grep -q .; then port=$p; break; fi
done
[ -n "$port" ] || { log "no free port"; exit 1; }
octet=$(( (port % 50) + 200 ))
kubeconfig=$work/kubeconfig
log "starting skiff server on :$port (data dir $data)"
"$skiff" server --data-dir "$data" --https-listen-port "$port" \
	--cluster-cidr "10.$octet.0.0/16" --service-cidr "10.$((octet + 1)).0.0/16" \
	--cluster-dns "10.$((octet + 1)).0.10" --node-name conformance \
	--write-kubeconfig "$kubeconfig" --cleanup-on-exit >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 120); do
	if [ -s "$kubeconfig" ] && "$skiff" kubectl --kubeconfig "$kubeconfig" wait --for=condition=Ready node --all --timeout=1s >/dev/null 2>&1; then
		break
	fi
	kill -0 "$server_pid" 2>/dev/null || { log "server exited:"; tail -20 "$work/server.log" >&2; exit 1; }
	sleep 0.5
done
"$skiff" kubectl --kubeconfig "$kubeconfig" get nodes >&2

# The suite runs kubectl; ours is the embedded one at the suite's version.
printf '#!/bin/sh\nexec %q kubectl "$@"\n' "$skiff" >"$work/kubectl"
chmod +x "$work/kubectl"

focus=${FOCUS:-'\[Conformance\]'}
if [ "${SMOKE:-}" = 1 ]; then
	focus=$(cd "$root" && go run ./hack/conformance/report focus "$here/smoke.txt")
fi
rm -rf "$results"
mkdir -p "$results"
log "running e2e.test with $procs processes (log: $results/e2e.log)"
set +e
"$cache/ginkgo" --procs="$procs" --focus="$focus" --skip="$skip" --no-color --timeout=3h -v ${GINKGO_ARGS:-} \
	--json-report=report.json --junit-report=junit.xml --output-dir="$results" \
	"$cache/e2e.test" -- \
	--kubeconfig="$kubeconfig" --provider=skeleton --kubectl-path="$work/kubectl" \
	--dump-logs-on-failure=false --minStartupPods=0 --report-dir="$results" \
	>"$results/e2e.log" 2>&1
rc=$?
set -e
cp "$work/server.log" "$results/server.log"

# A spec failing from a goroutine of its own (the API chunking specs, while
# PodTemplates are not served) kills its Ginkgo process, and then no JSON
# report is written: the summary comes from the -v log instead.
(cd "$root" && go run ./hack/conformance/report summarize -json "$results/report.json" -log "$results/e2e.log" \
	-areas "$here/areas.txt" -cmd "make conformance${SMOKE:+ SMOKE=$SMOKE}${FOCUS:+ FOCUS=$FOCUS}" \
	-passed "$results/passed.txt") >"$results/summary.md"
cat "$results/summary.md"
log "summary in $results/summary.md; Ginkgo exited $rc"
exit $rc
