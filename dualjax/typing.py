"""Type names shared by every module (kept free of heavy imports so anything can use them).

``PyTree``: any nested structure of containers (tuples, lists, dicts, NamedTuples, registered
classes) with arrays at the leaves — θ, ψ, ξ, optimizer states and batches are all pytrees.
Like optax's and flax's alias, it documents intent; the type checker sees ``Any``.
"""

from __future__ import annotations

from typing import Any

PyTree = Any
