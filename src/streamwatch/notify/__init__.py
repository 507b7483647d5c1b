"""Outputs of the live service: the event log, the websocket feed, (later) webhooks."""
