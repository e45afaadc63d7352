"""HTTP + WebSocket transport for a conductor (needs the ``server`` extra: starlette, uvicorn).

``create_app(conductor, token=...)`` builds the Starlette app; ``atomiton serve`` runs it under
uvicorn. The Python client is :class:`atomiton_core.client.RemoteConductor`. See docs/server.md.
"""

from __future__ import annotations

from atomiton_core.server.app import DEFAULT_MAX_BODY_BYTES, create_app, uvicorn_ws_protocol
from atomiton_core.server.events import EventHub

__all__ = ["DEFAULT_MAX_BODY_BYTES", "EventHub", "create_app", "uvicorn_ws_protocol"]
