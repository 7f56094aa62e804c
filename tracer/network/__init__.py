"""A container's network: its surface (what listens, its interfaces, where it connects) and
the network namespaces it runs in.

`surface`: the surface model, its JSON form (the trace's `network` section) and observing it;
`netns`: named network namespaces and running code inside one.
"""
