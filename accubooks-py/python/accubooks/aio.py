"""The asyncio twins of ``AccuBooks`` and ``Organization``.

Their methods that wait return awaitables (asyncio futures, already running on
the Tokio runtime the blocking classes use); reading kept state (``health()``, ``metrics()``, ``phase()``,
``ready()``, ``live()``, ``token()``) never waits and stays a plain method.
"""

from typing import Any, AsyncIterator, Awaitable, Callable

from ._accubooks import AsyncAccuBooks, AsyncOrganization

__all__ = ["AsyncAccuBooks", "AsyncOrganization", "iterate"]


async def iterate(
    method: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
) -> AsyncIterator[Any]:
    """The asyncio twin of ``accubooks.iterate``: every item of a paged list,
    page after page: ``async for invoice in aio.iterate(org.invoices)``."""
    kwargs.setdefault("limit", 500)
    after = kwargs.pop("after", None)
    while True:
        page = await method(*args, after=after, **kwargs)
        if isinstance(page, dict):
            items, after = page["rows"], page["next_cursor"]
        else:
            items, after = page, page.next_cursor
        for item in items:
            yield item
        if after is None:
            return
