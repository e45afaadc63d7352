"""HTTP + WebSocket transport for a conductor, and the Python client that talks to it.

- :mod:`atomiton_core.server.app` (needs the ``server`` extra: starlette, uvicorn):
  ``create_app(conductor, token=...)`` builds the Starlette app; ``atomiton serve`` runs it.
- :mod:`atomiton_core.server.client`: :class:`RemoteConductor`, which needs only httpx and
  websockets. Importing this package imports neither side; see docs/server.md.
"""
