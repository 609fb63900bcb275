"""Pagination helpers for the provider API families: body cursor, page numbers, Kubernetes continue.

Every list endpoint of the eleven providers is one of these three shapes (see research/providers.md,
"Pagination families"); each helper stops on an empty page and never loops on a repeated cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from multicloud_collector.providers.http import ApiClient, ApiError, _path_of

MAX_PAGES = 10_000


def _dig(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _items(data: Any, items_key: str, client: ApiClient, path: str) -> list[Any]:
    found = _dig(data, items_key)
    if found is None:
        return []
    if not isinstance(found, list):
        raise ApiError(
            200, _path_of(client.url_for(path)), f"'{items_key}' is not a list", provider=client.provider
        )
    return found


async def paginate_cursor(
    client: ApiClient,
    path: str,
    *,
    items_key: str,
    params: Mapping[str, str | int] | None = None,
    cursor_param: str = "cursor",
    next_cursor: Callable[[Any], str | None],
) -> list[Any]:
    """Follow an opaque cursor (Vultr ``meta.links.next``, Paperspace ``nextPage``) until it is empty."""
    out: list[Any] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        query: dict[str, str | int] = dict(params or {})
        if cursor:
            query[cursor_param] = cursor
        data = await client.get_json(path, query)
        out.extend(_items(data, items_key, client, path))
        cursor = next_cursor(data)
        if not cursor or cursor in seen:
            break
        seen.add(cursor)
    return out


async def paginate_pages(
    client: ApiClient,
    path: str,
    *,
    items_key: str,
    page_param: str = "page",
    size_param: str = "per_page",
    size: int = 100,
    last_page: Callable[[Any, int], bool],
    params: Mapping[str, str | int] | None = None,
    first_page: int = 1,
) -> list[Any]:
    """Numbered pages (DigitalOcean, Linode, Hetzner) until ``last_page(data, page)`` or an empty page."""
    out: list[Any] = []
    page = first_page
    for _ in range(MAX_PAGES):
        query: dict[str, str | int] = dict(params or {})
        query[page_param] = page
        query[size_param] = size
        data = await client.get_json(path, query)
        items = _items(data, items_key, client, path)
        out.extend(items)
        if not items or last_page(data, page):
            break
        page += 1
    return out


async def paginate_continue(
    client: ApiClient, path: str, *, limit: int = 500, params: Mapping[str, str | int] | None = None
) -> list[Any]:
    """Kubernetes list pagination: ``limit`` + ``continue`` from ``metadata.continue``."""

    def next_token(data: Any) -> str | None:
        token = _dig(data, "metadata.continue")
        return str(token) if token else None

    query: dict[str, str | int] = dict(params or {})
    query["limit"] = limit
    return await paginate_cursor(
        client, path, items_key="items", params=query, cursor_param="continue", next_cursor=next_token
    )
