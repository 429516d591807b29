"""What people touch: slash commands (`commands`), clicks on pause buttons and the route picker
(`interactions`), modals (`modals`), tool-call cards (`tool_calls`), the hand-over form (`handover`), start
forms (`start_forms`), App Home (`home`, its queries in `home_queries`) and the welcome message (`welcome`).

A click is checked, decided (by `bot.approvals`), written with what it owes Slack and handed to
`bot.delivery`. May import approvals, runs, delivery, the Slack Web API side (`bot.slack.gateway`,
`bot.slack.workspaces`), store, blocks and the top-level foundations; never `bot.slack`'s entry side.
"""
