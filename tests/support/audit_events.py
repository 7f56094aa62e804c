"""Kubernetes audit Events as the API server writes them."""

from __future__ import annotations


def denial(n: int, pod: str = "web-7d9f8c6b5-x2q7v", namespace: str = "team") -> dict:
    """A replicaset-controller pod create denied at restricted, in the apiserver's key order."""
    when = f"2024-06-01T10:{n // 60 % 60:02d}:{n % 60:02d}.000000Z"
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"id-{n}",
        "stage": "ResponseComplete",
        "verb": "create",
        "user": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "userAgent": "kube-controller-manager/v1.30.2",
        "objectRef": {"resource": "pods", "namespace": namespace, "apiVersion": "v1"},
        "responseStatus": {
            "status": "Failure",
            "code": 403,
            "reason": "Forbidden",
            "message": f'pods "{pod}" is forbidden: violates PodSecurity "restricted:latest": '
            'runAsNonRoot != true (pod or container "app" must set '
            "securityContext.runAsNonRoot=true)",
        },
        "requestReceivedTimestamp": when,
        "stageTimestamp": when,
        "annotations": {"pod-security.kubernetes.io/enforce-policy": "restricted:latest"},
    }
