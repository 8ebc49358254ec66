import time

import pytest
from inventory import Inventory, OutOfStock


@pytest.fixture
def inv():
    i = Inventory()
    i.add("apple", 3)
    return i


def test_add(inv):
    inv.add("pear")
    assert inv.items == {"apple": 3, "pear": 1}


def test_take(inv):
    inv.take("apple", 2)
    assert inv.items["apple"] == 1


def test_take_too_many(inv):
    with pytest.raises(OutOfStock):
        inv.take("apple", 4)


@pytest.mark.parametrize("count", [0, -1, -100])
def test_add_rejects_non_positive(inv, count):
    with pytest.raises(ValueError):
        inv.add("apple", count)


@pytest.mark.parametrize("n", range(40))
def test_many_adds(n):
    inv = Inventory()
    for i in range(n):
        inv.add(f"item-{i % 7}")
    time.sleep(0.05)  # stands in for real work, so the farm has something to spread
    assert inv.total() == n
