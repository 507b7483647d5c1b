"""The HTTP and websocket face of the live service (CONTRACTS.md §5); `create_app` builds it."""
