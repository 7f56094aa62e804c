"""A container's network: its surface (what listens, its interfaces, where it connects) and
the network namespaces it runs in.

`surface`: the surface data model, its JSON form (the trace's `network` section, checked
against the trace schema) and the union of observations;
`observe`: reading a namespace's surface (sock_diag, rtnetlink, its sysctl) and the recorder's
watch over the workload's namespace (`SurfaceWatch`);
`netns`: named network namespaces, and `call_in`, the one way code enters a namespace.
"""
