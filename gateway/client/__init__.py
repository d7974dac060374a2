"""The client library: a trading client over TCP (msgpack) or WebSocket (JSON), with logon
signing, request/answer matching and local L2 books. Used by the demo, the load tester,
`tonne custody` and the tests; the protocol it speaks is gateway/wire/PROTOCOL.md."""

from gateway.client.client import Client, ClientError, ConnectionLost, LocalBook, RequestRejected

__all__ = ["Client", "ClientError", "ConnectionLost", "LocalBook", "RequestRejected"]
