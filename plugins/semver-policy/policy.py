"""The semver policy itself, free of the plugin bindings so that it runs
and is tested with a plain Python (`python3 -m unittest` in this folder).

Keeps the newest `patches` patch releases of each of the last `minors`
minor versions; every other tag is dropped with its reason.
"""

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

# `v1.2.3` or `1.2.3`, with an optional `-pre` suffix (no build metadata).
VERSION = re.compile(r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$")

DEFAULTS = {"patches": 2, "minors": 2}


@dataclass(frozen=True)
class Decision:
    """One tag's fate: kept, or dropped with the reason shown to the user."""

    tag: str
    keep: bool
    reason: Optional[str]


def parse_settings(settings: Sequence[Tuple[str, str]]) -> Dict[str, int]:
    """`patches` and `minors`, positive integers; any other key is refused."""
    values = dict(DEFAULTS)
    for key, value in settings:
        if key not in DEFAULTS:
            raise ValueError(f"unknown setting `{key}` (semver-policy takes patches, minors)")
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"setting `{key}`: `{value}` is not a positive whole number")
        values[key] = int(value)
    return values


def decide(tags: Sequence[str], patches: int, minors: int) -> List[Decision]:
    """A decision per tag, in the order given. Tags naming the same version
    (`v1.2.3` and `1.2.3`) share their fate."""
    releases: Dict[Tuple[int, int], set] = {}
    parsed: List[Optional[Tuple[int, int, int]]] = []
    reasons: Dict[int, str] = {}
    for i, tag in enumerate(tags):
        m = VERSION.match(tag)
        if m is None:
            parsed.append(None)
            reasons[i] = "not a version (v1.2.3 or 1.2.3, optionally -pre)"
        elif m.group(4):
            parsed.append(None)
            reasons[i] = "pre-release"
        else:
            major, minor, patch = (int(g) for g in m.group(1, 2, 3))
            parsed.append((major, minor, patch))
            releases.setdefault((major, minor), set()).add(patch)

    last_minors = sorted(releases, reverse=True)[:minors]
    kept_patches = {mm: sorted(releases[mm], reverse=True)[:patches] for mm in last_minors}

    decisions = []
    for i, tag in enumerate(tags):
        version = parsed[i]
        if version is None:
            decisions.append(Decision(tag, False, reasons[i]))
            continue
        major, minor, patch = version
        name = f"{major}.{minor}"
        if (major, minor) not in kept_patches:
            decisions.append(Decision(tag, False, f"minor {name} is not among the last {minors}"))
        elif patch not in kept_patches[(major, minor)]:
            decisions.append(Decision(tag, False, f"older patch of {name}"))
        else:
            decisions.append(Decision(tag, True, None))
    return decisions
