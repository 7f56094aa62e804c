#!/usr/bin/env bash
# Record a NIM on a Kubernetes GPU node (containerd + runc) from its first syscall, and
# generate its profile.
#
#   scripts/record-nim.sh NAMESPACE LABEL=VALUE [CONTAINER] [-- LOADTEST OPTIONS...]
#
# Run it as root on the node where the NIM's next pod will run. It arms the recorder first
# (`tracer record --kubernetes-selector NAMESPACE/LABEL=VALUE`: the BPF program is loaded and
# waits for the next new pod with that label on this node), then asks you to restart the
# workload (`kubectl -n NAMESPACE rollout restart deployment/...`): the recorder never
# restarts or deletes anything. The new pod is recorded from its first syscall; once it
# answers on the pod's IP, phase load begins (SIGUSR1 to the recorder) and
# scripts/loadtest.py drives the NIM's OpenAI API; then the recording is stopped (SIGTERM,
# the trace is written), profiles/<namespace>-<value>/ generated and what to commit printed.
# Environment: REQUESTS (default 500), CONCURRENCY (8), PORT (8000), DURATION (3600 s cap),
# CONTAINER_RUNTIME_ENDPOINT (the CRI socket, default containerd's).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
namespace=$1 selector=$2; shift 2
case $selector in *=*) ;; *) usage ;; esac
container=
if [ $# -gt 0 ] && [ "$1" != -- ]; then container=$1; shift; fi
[ "${1:-}" = -- ] && shift
loadtest_args=("$@")

scripts/setup
tracer=.venv/bin/tracer
command -v crictl >/dev/null || { echo "record-nim: crictl not found (install cri-tools)" >&2; exit 2; }

name=${selector#*=}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=work/nim/$namespace-$name-$stamp
profile=profiles/$namespace-$name
mkdir -p "$work"
pods() { crictl pods --namespace "$namespace" --label "$selector" --state ready -q; }
before=$(pods | sort)

"$tracer" record --kubernetes-selector "$namespace/$selector" ${container:+--container "$container"} \
    --duration "${DURATION:-3600}" --out "$work/nim.trace.json" 2> >(tee "$work/record.log" >&2) &
recorder=$!
trap 'kill -TERM $recorder 2>/dev/null || true' EXIT
until grep -q "waiting for it on this node" "$work/record.log" 2>/dev/null; do
    kill -0 $recorder 2>/dev/null || { wait $recorder; exit $?; }
    sleep 0.2
done
echo "record-nim: armed. Now restart the workload, e.g.: kubectl -n $namespace rollout restart deployment/<name>" >&2

sandbox=
while [ -z "$sandbox" ]; do
    kill -0 $recorder 2>/dev/null || { wait $recorder; exit $?; }
    sandbox=$(comm -13 <(echo "$before") <(pods | sort) | head -n1)
    sleep 0.5
done
ip=$(crictl inspectp -o go-template --template '{{.status.network.ip}}' "$sandbox")
base=http://$ip:${PORT:-8000}
echo "record-nim: new pod $sandbox at $base; waiting for it to be ready" >&2
until curl -fsS -o /dev/null "$base/v1/health/ready"; do
    kill -0 $recorder 2>/dev/null || { wait $recorder; exit $?; }
    sleep 1
done
kill -USR1 $recorder   # phase load
.venv/bin/python scripts/loadtest.py --url "$base" --allow-remote --requests "${REQUESTS:-500}" \
    --concurrency "${CONCURRENCY:-8}" "${loadtest_args[@]}" | tee "$work/loadtest.txt"
kill -TERM $recorder   # the recording ends; the trace is written
trap - EXIT
status=0; wait $recorder || status=$?
[ $status -le 1 ] || { echo "record-nim: the recording failed (exit $status), see $work/record.log" >&2; exit $status; }

"$tracer" generate "$work/nim.trace.json" --out "$profile"
"$tracer" show "$work/nim.trace.json" --top 15 > "$work/summary.txt"
cp "$work/nim.trace.json" "$profile/recording.trace.json"

cat <<MSG

Profile for $namespace/$selector written to $profile/:
  seccomp.json        OCI seccomp profile (allow-list of what the NIM called)
  capabilities.json   capabilities it used, with evidence (drop ALL, add these)
  recording.trace.json, recording.json   the evidence
Review $work/summary.txt, then commit:
  git add $profile && git commit -m "seccomp profile for $namespace/$selector ($stamp)"
Install and enforce:
  $tracer k8s seccompprofile $profile --name $name
  $tracer k8s harden <deployment.yaml> --profile $profile --out <hardened.yaml>
Prove it before enforcing (on a node with runc, against a copy of the NIM's bundle):
  $tracer verify $profile --bundle <bundle> --ready-url http://127.0.0.1:8000/v1/health/ready --load '...'
MSG
