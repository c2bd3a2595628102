"""keep-py: keeps every entry (strata's plugin benchmark: what an entry
costs to cross into a Python guest and back)."""

from typing import List, Tuple

from wit_world import exports
from wit_world.imports import types


class LayerTransformer(exports.LayerTransformer):
    def begin(self, settings: List[Tuple[str, str]], layer: types.LayerInfo) -> None:
        pass

    def entries(self, batch: List[types.EntryHeader]) -> List[types.Decision]:
        return [types.Decision_Keep()] * len(batch)

    def finish(self) -> List[types.Replacement]:
        return []
