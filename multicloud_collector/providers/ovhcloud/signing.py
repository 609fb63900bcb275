"""OVHcloud request signing and the GPU reading of flavor names (pure functions, easy to test).

OVH's API authenticates every call with ``X-Ovh-Signature`` = "$1$" + SHA1 hex of
``application_secret+consumer_key+METHOD+full_url+body+timestamp``, where the timestamp is the
*server's* clock (local time plus the delta from ``GET /auth/time``): a skewed host clock would
otherwise make every signature invalid.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

SIGNATURE_PREFIX = "$1$"

# Public Cloud GPU flavors are named <family>-<RAM GB>; RAM grows with the GPU count, so
# count = RAM / RAM-per-GPU of the family. ``api.gpu_flavors`` overrides or extends this table.
GPU_FAMILIES: Mapping[str, tuple[str, int]] = {
    "t1": ("Tesla V100", 45),
    "t2": ("Tesla V100S", 45),
    "a10": ("A10", 45),
    "l4": ("L4", 90),
    "l40s": ("L40S", 90),
    "a100": ("A100", 180),
    "h100": ("H100", 380),
}
_FLAVOR = re.compile(r"^(?:win-)?(?P<family>[a-z0-9]+?)-(?P<ram>\d+)(?:-|$)")


def ovh_signature(
    application_secret: str, consumer_key: str, method: str, url: str, body: str, timestamp: int | str
) -> str:
    """The ``X-Ovh-Signature`` value for one request (``body`` is "" for a GET)."""
    raw = "+".join((application_secret, consumer_key, method.upper(), url, body, str(timestamp)))
    return SIGNATURE_PREFIX + hashlib.sha1(raw.encode("utf-8")).hexdigest()


def flavor_gpus(flavor_name: str, overrides: Mapping[str, tuple[str, int]] | None = None) -> tuple[str, int]:
    """(GPU model, count) of a flavor name such as ``h100-380`` or ``t1-90``; ("", 0) for CPU flavors."""
    if overrides and flavor_name in overrides:
        return overrides[flavor_name]
    m = _FLAVOR.match(flavor_name.lower())
    if m is None:
        return "", 0
    family = GPU_FAMILIES.get(m.group("family"))
    if family is None:
        return "", 0
    model, ram_per_gpu = family
    return model, max(1, int(m.group("ram")) // ram_per_gpu)
