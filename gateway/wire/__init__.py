"""The wire format: every message as a msgspec Struct (protocol.py), its two encodings
(msgpack frames over TCP, JSON over WebSocket) and its reference, PROTOCOL.md."""
