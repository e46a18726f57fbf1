"""Anti-framing headers for every HTTP response of the dashboard (an ASGI middleware).

Streamlit has no option for response headers, and a page of another origin that showed the
dashboard in a hidden frame could lure a user's clicks onto Start or Cancel (clickjacking). The
served entry point, ``dashboard/serve.py``, wraps the app in :class:`FrameGuard`. Same origin stays
allowed: Streamlit draws its own components in frames served by the same server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADERS = (
    (b"x-frame-options", b"SAMEORIGIN"),  # older browsers
    (b"content-security-policy", b"frame-ancestors 'self'"),  # the standard one
)

#: Set once the server has built the guard into its middleware stack (on its first request, which
#: always comes before any page runs), so app.py can tell a guarded server from a plain one.
ACTIVE = False


class FrameGuard:
    """Adds :data:`HEADERS` to the start of every HTTP response; other scopes pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        global ACTIVE
        self.app = app
        ACTIVE = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, send_guarded)
