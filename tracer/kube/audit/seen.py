"""Which (auditID, stage) pairs were counted already, in 8 to 16 bytes each.

A rotated copy, or the same log given twice, repeats events that must count once. Only the
events that carry a Pod Security outcome are remembered, as 64-bit digests (Python's string
hash, seeded per process) in one flat open-addressing table: a million of them take 16 MiB
where a set of the auditID strings would take ~120 MiB. Two different pairs share a digest
with probability ~n²/2⁶⁵ (3e-8 for a million), which would drop one event from the counts.
"""

from __future__ import annotations

from array import array

EMPTY = 0  # marks a free slot; a digest of 0 is stored as 1


class SeenDigests:
    def __init__(self, capacity: int = 1024):
        self._slots = array("q", bytes(8 * capacity))  # capacity: a power of two
        self._used = 0

    def __len__(self) -> int:
        return self._used

    def add(self, key) -> bool:
        """Remember `key`; False if it was seen before."""
        digest = hash(key) or 1
        slots, mask = self._slots, len(self._slots) - 1
        index = digest & mask
        while (found := slots[index]) != EMPTY:
            if found == digest:
                return False
            index = (index + 1) & mask
        slots[index] = digest
        self._used += 1
        if 2 * self._used > len(slots):
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        self._slots = slots = array("q", bytes(16 * len(old)))
        mask = len(slots) - 1
        for digest in old:
            if digest != EMPTY:
                index = digest & mask
                while slots[index] != EMPTY:
                    index = (index + 1) & mask
                slots[index] = digest
