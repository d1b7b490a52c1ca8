"""Symbolic dimensions shared by all tensors of one attention candidate.

Every loop of the attention (batch dims, m, n, k1, k2) is an *atom*. A tensor's *layout*
says, per tensor dim, which atoms it spans in row-major order: a collapsed `B*H` dim is
`[b, h]`, a unit dim is `[]`. Tracing a value through a transpose permutes its layout,
through collapse/expand_shape regroups it, through a broadcast drops atoms. When a
reshape splits a dim that is one atom, the atom is refined into smaller ones, everywhere.

With every tensor expressed over the same atoms, "is this the key dim?", "does V's
reduction dim match the softmax dim?" and the attention op's indexing maps are just
comparisons and lookups.
"""

from __future__ import annotations

from typing import Optional

Layout = list  # list[list[int]]: per tensor dim, the atoms it spans


class Atoms:
    def __init__(self) -> None:
        self._sizes: list[Optional[int]] = []
        self._split: dict[int, list[int]] = {}
        self.seen_in: dict = {}  # dynamic atom -> (tensor value, dim) that holds exactly it

    def note(self, value, layout: Layout) -> None:
        """Remembers where each dynamic atom is a dim of its own, to read its size there."""
        for d, group in enumerate(layout):
            leaves = [a for a in self.leaves(group) if self._sizes[a] != 1]
            if len(leaves) == 1 and self._sizes[leaves[0]] is None:
                self.seen_in.setdefault(leaves[0], (value, d))

    def new(self, size: Optional[int]) -> int:
        self._sizes.append(size)
        return len(self._sizes) - 1

    def size(self, atom: int) -> Optional[int]:
        return self._sizes[atom]

    def leaves(self, atoms: list[int]) -> list[int]:
        out: list[int] = []
        for a in atoms:
            out.extend(self.leaves(self._split[a]) if a in self._split else [a])
        return out

    def resolve(self, layout: Layout) -> Layout:
        return [self.leaves(group) for group in layout]

    def _refine(self, atom: int, first: int) -> tuple[int, int]:
        """Splits `atom` (static size) into (first, size // first)."""
        size = self._sizes[atom]
        parts = [self.new(first), self.new(size // first)]
        self._split[atom] = parts
        return parts[0], parts[1]

    def _split_dynamic(self, atom: int, sizes: list[Optional[int]]) -> Layout:
        """A dynamic atom split into one dynamic part and static ones: the reshape that
        splits it defines the parts (`?` = `? x 4`), so they are new atoms."""
        kept = [s for s in sizes if s != 1]
        if len(kept) == 1:
            return [[atom] if s is None else [] for s in sizes]
        parts = iter([self.new(s) for s in kept])
        groups = [[] if s == 1 else [next(parts)] for s in sizes]
        self._split[atom] = [g[0] for g in groups if g]
        return groups

    def split(self, atoms: list[int], sizes: list[Optional[int]]) -> Optional[Layout]:
        """Partitions the leaves of `atoms` into consecutive groups of the given sizes.

        Refines atoms where a group boundary falls inside one. None when impossible
        (sizes that do not divide, a dynamic dim split into more than one dynamic part).
        """
        queue = [a for a in self.leaves(atoms) if self._sizes[a] != 1]
        if len(queue) == 1 and self._sizes[queue[0]] is None and sizes.count(None) == 1:
            return self._split_dynamic(queue[0], sizes)
        groups: Layout = []
        for target in sizes:
            group: list[int] = []
            if target is None:
                if not queue or self._sizes[queue[0]] is not None:
                    return None
                group.append(queue.pop(0))
                groups.append(group)
                continue
            have = 1
            while have < target:
                if not queue:
                    return None
                a = queue[0]
                size = self._sizes[a]
                if size is None:
                    return None
                if target % (have * size) == 0:
                    group.append(queue.pop(0))
                    have *= size
                elif size % (target // have) == 0:
                    head, tail = self._refine(a, target // have)
                    queue[0] = tail
                    group.append(head)
                    have = target
                else:
                    return None
            groups.append(group)
        if queue:
            return None
        return groups
