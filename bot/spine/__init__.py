"""The path of one message: webhook → intake (group commit) → inbox (engine, state, replies) →
outbox (sends) ← statuses (delivery webhooks). Read docs/architecture.md for the rules."""
