"""Runs: starting and following them (`runner`), the bot's background work (`background`) and the sweeper
that takes up what a crash left (`sweeper`).

May import delivery, the Slack Web API side, store, blocks and the top-level foundations; never approvals,
surfaces or `bot.slack`'s entry side.
"""
