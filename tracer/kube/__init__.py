"""Kubernetes: Pod Security evaluation, hardening patches, profile installation, audit forensics, fleet recording."""
