"""Runs: starting and following them (`runner`), the bot's background work (`background`), reminders and
escalations of open pauses (`timers`, whose rows are `bot.store.timer_rows`) and the sweeper that fires
them and takes up what a crash left (`sweeper`).

May import delivery, the Slack Web API side, store, blocks and the top-level foundations; never approvals,
surfaces or `bot.slack`'s entry side.
"""
