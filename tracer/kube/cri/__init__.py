"""The node's container runtime through its CRI socket: which container a pod runs, and where
its cgroup is. `client` talks gRPC, `wire` is the protobuf codec, `cgroup_path` finds cgroups."""
