"""semver-policy: a strata tag filter that keeps the newest patch releases
of the last minor versions (see policy.py).

Settings: `patches` (default 2), `minors` (default 2).
"""

from typing import List, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log, types

import policy


class TagFilterer(exports.TagFilterer):
    def filter(self, repository: str, tags: List[str], settings: List[Tuple[str, str]]) -> List[types.Verdict]:
        try:
            values = policy.parse_settings(settings)
        except ValueError as e:
            raise Err(str(e))
        decisions = policy.decide(tags, values["patches"], values["minors"])
        kept = sum(d.keep for d in decisions)
        log.info(f"{repository}: kept {kept} of {len(decisions)} tags")
        return [types.Verdict(tag=d.tag, keep=d.keep, reason=d.reason) for d in decisions]

