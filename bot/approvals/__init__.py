"""Who may do what, and how a pause is decided: the access rules (`access`), who has a say (`voices`),
votes (`ballots`), hand-overs (`handover`), standing approvals of tool calls (`grants`) and reminders and
escalations (`timers`). Who is told about a pause is `bot.notify`, beside `bot.policy`.

May import runs, delivery, the Slack Web API side, store, blocks and the top-level foundations; never
surfaces or `bot.slack`'s entry side.
"""
