"""The asyncio twins of ``AccuBooks`` and ``Organization``.

Their methods that wait return awaitables (asyncio futures, already running on
the Tokio runtime the blocking classes use); reading kept state (``health()``, ``metrics()``, ``phase()``,
``ready()``, ``live()``, ``token()``) never waits and stays a plain method.
"""

from ._accubooks import AsyncAccuBooks, AsyncOrganization

__all__ = ["AsyncAccuBooks", "AsyncOrganization"]
