"""A tiny inventory library: the code the demo suite tests."""

from __future__ import annotations

from dataclasses import dataclass, field


class OutOfStock(Exception):
    """Raised when taking more of an item than there is."""


@dataclass
class Inventory:
    items: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, count: int = 1) -> None:
        if count <= 0:
            raise ValueError("count must be positive")
        self.items[name] = self.items.get(name, 0) + count

    def take(self, name: str, count: int = 1) -> None:
        have = self.items.get(name, 0)
        if count > have:
            raise OutOfStock(f"{name}: wanted {count}, have {have}")
        self.items[name] = have - count

    def total(self) -> int:
        return sum(self.items.values())
