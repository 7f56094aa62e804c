#!/usr/bin/env bash
# Record a NIM on a Kubernetes GPU node (containerd + runc) and generate its profile.
#
#   scripts/record-nim.sh NAMESPACE POD [CONTAINER] [-- LOADTEST OPTIONS...]
#
# Run it as root on the node where the pod runs. It finds the container through the CRI
# socket (as crictl does), records it with `tracer record --kubernetes-pod`, drives the
# NIM's OpenAI API on port 8000 of the pod's IP with scripts/loadtest.py while recording,
# generates profiles/<namespace>-<pod>/ and prints what to commit. The pod keeps running.
#
# The recording starts when the tracer attaches: a running NIM's start-up is behind it.
# To record start-up too, delete the pod and run this script as soon as its replacement's
# container exists (crictl ps), or record a copy of the NIM with `tracer record --runc-bundle`.
# Environment: REQUESTS (default 500), CONCURRENCY (8), PORT (8000), DURATION (900 s cap),
# CONTAINER_RUNTIME_ENDPOINT (the CRI socket, default containerd's).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
namespace=$1 pod=$2; shift 2
container=
if [ $# -gt 0 ] && [ "$1" != -- ]; then container=$1; shift; fi
[ "${1:-}" = -- ] && shift
loadtest_args=("$@")

scripts/setup
tracer=.venv/bin/tracer
command -v crictl >/dev/null || { echo "record-nim: crictl not found (install cri-tools)" >&2; exit 2; }

sandbox=$(crictl pods --namespace "$namespace" --name "^${pod}\$" -q | head -n1)
[ -n "$sandbox" ] || { echo "record-nim: pod $namespace/$pod is not on this node" >&2; exit 2; }
ip=$(crictl inspectp -o go-template --template '{{.status.network.ip}}' "$sandbox")
base=http://$ip:${PORT:-8000}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=work/nim/$namespace-$pod-$stamp
profile=profiles/$namespace-$pod
mkdir -p "$work"

echo "record-nim: $namespace/$pod${container:+ ($container)} at $base -> $work" >&2
load=".venv/bin/python scripts/loadtest.py --url $base --allow-remote --requests ${REQUESTS:-500} \
--concurrency ${CONCURRENCY:-8} ${loadtest_args[*]:-}"
"$tracer" record --kubernetes-pod "$namespace/$pod" ${container:+--container "$container"} \
    --ready-url "$base/v1/health/ready" --load "$load" --duration "${DURATION:-900}" \
    --out "$work/nim.trace.json"

"$tracer" generate "$work/nim.trace.json" --out "$profile"
"$tracer" show "$work/nim.trace.json" --top 15 > "$work/summary.txt"
cp "$work/nim.trace.json" "$profile/recording.trace.json"

cat <<MSG

Profile for $namespace/$pod written to $profile/:
  seccomp.json        OCI seccomp profile (allow-list of what the NIM called)
  capabilities.json   capabilities it used, with evidence (drop ALL, add these)
  recording.trace.json, recording.json   the evidence
Review $work/summary.txt, then commit:
  git add $profile && git commit -m "seccomp profile for $namespace/$pod ($stamp)"
Install and enforce:
  $tracer k8s seccompprofile $profile --name $pod
  $tracer k8s harden <deployment.yaml> --profile $profile --out <hardened.yaml>
Prove it before enforcing (on a node with runc, against a copy of the NIM's bundle):
  $tracer verify $profile --bundle <bundle> --ready-url http://127.0.0.1:8000/v1/health/ready --load '...'
MSG
