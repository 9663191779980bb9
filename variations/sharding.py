"""Splitting the work into disjoint, deterministic parts: torchrun ranks and/or ``--shard i/n`` jobs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from utils.errors import UserError

SHARD_PATTERN = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Part:
    """This process's part ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    def select(self, items: list) -> list:
        """Every ``count``-th item from ``index`` on: parts are disjoint, cover everything, mix the classes."""
        return items[self.index :: self.count]

    @property
    def tag(self) -> str:
        return f"part-{self.index + 1:05d}-of-{self.count:05d}"


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"2/8"`` → (1, 8): the second of eight jobs. Shards are numbered from 1 on the command line."""
    if text is None:
        return 0, 1
    match = SHARD_PATTERN.match(text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UserError(f"--shard {text!r}: expected i/n with 1 ≤ i ≤ n, e.g. --shard 2/8")
    return int(match[1]) - 1, int(match[2])


def combine(shard: tuple[int, int], rank: int, world_size: int) -> Part:
    """Each of ``n`` shard jobs may itself run ``world_size`` torchrun processes."""
    shard_index, shard_count = shard
    return Part(shard_index * world_size + rank, shard_count * world_size)
