"""A CRI node of our own, for the demo and the tests: `containerd` (a private containerd with
its CRI plugin), `cni` (its pod network), `images` (the pause and mini-NIM images, built
here), `node` (pods run through CRI as the kubelet runs them)."""
