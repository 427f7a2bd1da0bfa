"""The `bot` command's tools: serve, chat, flow tests, replay, doctor and the maintenance commands."""
