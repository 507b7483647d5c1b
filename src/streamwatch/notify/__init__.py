"""Outputs of the live service: the event log, the websocket feed, webhooks (`webhook` dispatches;
`subscription`, `delivery` and `signing` are what a webhook is, one attempt, and its signature)."""
