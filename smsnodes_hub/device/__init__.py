"""The phone side: protocol frames, the WebSocket endpoint, each live connection, the
hub of live connections and presence, and per-device pacing."""
