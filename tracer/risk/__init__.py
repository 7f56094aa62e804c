"""Residual risk: what a profile still allows, in the terms of a threat model (MITRE ATT&CK for
Containers)."""
