"""Delivery: the outbox that sends what a decision owes Slack, retried until done (`outbox`), and how runs
and pauses are presented (`presenter`, drawing with `bot.blocks`).

May import the Slack Web API side, store, blocks and the top-level foundations; never runs, approvals,
surfaces or `bot.slack`'s entry side.
"""
