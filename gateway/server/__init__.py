"""The server: TCP and WebSocket listeners (server.py), sessions and their limits
(session.py), the logon check (auth.py), routing of core events to sessions (routing.py),
queries (queries.py), market data (marketdata.py), the injected clock (clock.py)."""
