"""Compact ticket_key -> slot map.

A dict[str, int] costs ~130 bytes per entry (key string, boxed slot, table). Here the key is
reduced to a 64-bit blake2b digest and kept with its slot in two flat arrays (open addressing,
linear probing, backward-shift deletion): ~12 bytes x 1/load per ticket. Two distinct keys
sharing a 64-bit digest would merge (probability ~n^2/2^65, ~3e-8 at 1M tickets): acceptable
for metrics.
"""

from __future__ import annotations

from array import array
from hashlib import blake2b

_MAX_LOAD = 0.6


def key_hash(key: str) -> int:
    digest = int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "little")
    return digest or 1  # 0 marks an empty table cell


class SlotIndex:
    __slots__ = ("_hashes", "_mask", "_slots", "count")

    def __init__(self, capacity: int = 1024) -> None:
        size = 16
        while size * _MAX_LOAD < capacity:
            size *= 2
        self._alloc(size)
        self.count = 0

    def _alloc(self, size: int) -> None:
        self._hashes = array("Q", bytes(8 * size))
        self._slots = array("i", bytes(4 * size))
        self._mask = size - 1

    def get(self, h: int) -> int:
        """The slot of hash ``h``, or -1."""
        hashes, mask = self._hashes, self._mask
        i = h & mask
        while True:
            found = hashes[i]
            if found == h:
                return self._slots[i]
            if found == 0:
                return -1
            i = (i + 1) & mask

    def put(self, h: int, slot: int) -> None:
        if (self.count + 1) > (self._mask + 1) * _MAX_LOAD:
            self._grow()
        hashes, mask = self._hashes, self._mask
        i = h & mask
        while True:
            found = hashes[i]
            if found == h:
                self._slots[i] = slot
                return
            if found == 0:
                hashes[i] = h
                self._slots[i] = slot
                self.count += 1
                return
            i = (i + 1) & mask

    def remove(self, h: int) -> None:
        hashes, slots, mask = self._hashes, self._slots, self._mask
        i = h & mask
        while hashes[i] != h:
            if hashes[i] == 0:
                return
            i = (i + 1) & mask
        self.count -= 1
        # Backward-shift deletion: pull later members of the probe run into the hole so no
        # tombstones are needed.
        j = i
        while True:
            hashes[i] = 0
            while True:
                j = (j + 1) & mask
                if hashes[j] == 0:
                    return
                home = hashes[j] & mask
                # Entry j may move into hole i only if its home is not cyclically in (i, j].
                if (i < home <= j) if i <= j else (i < home or home <= j):
                    continue
                break
            hashes[i] = hashes[j]
            slots[i] = slots[j]
            i = j

    def _grow(self) -> None:
        old_hashes, old_slots = self._hashes, self._slots
        self._alloc(2 * len(old_hashes))
        self.count = 0
        for h, slot in zip(old_hashes, old_slots, strict=True):
            if h:
                self.put(h, slot)

    def items(self) -> list[tuple[int, int]]:
        return [(h, s) for h, s in zip(self._hashes, self._slots, strict=True) if h]

    def dump(self) -> tuple[array[int], array[int]]:
        return self._hashes, self._slots

    @classmethod
    def load(cls, hashes: array[int], slots: array[int]) -> SlotIndex:
        index = cls(0)
        index._hashes, index._slots, index._mask = hashes, slots, len(hashes) - 1
        index.count = sum(1 for h in hashes if h)
        return index
