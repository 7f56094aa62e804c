"""The embedded default and what runs it on this machine: the mini-NIM workload (`mininim/`),
its OCI bundle (`bundle`), and a CRI node of our own (`crinode/`: a private containerd with
its CRI plugin, a CNI bridge, images made from the host's files, pods run as the kubelet runs
them). Shipped because the demo is part of the product; no pipeline stage imports it.
"""
