"""The node's container runtime through its CRI socket, as the kubelet and crictl use it.

`client`: the CRI gRPC client (upstream's runtime.v1 messages, `runtime/v1/`) and the lookup
of a pod's container; `cgroup_path`: its cgroup v2 directory. A CRI node of our own, for the
demo and the tests, is `tracer.embedded.crinode`."""
