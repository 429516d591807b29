"""Who may do what, and how a pause is decided: the access rules (`access`), who has a say (`voices`),
votes (`ballots`), standing approvals of tool calls (`grants`), `@approval` records resolved outside
Slack (`elsewhere`), and the types a decision is made on
(`types`: a loaded pause, a rule). Who may hand a pause over is here (`access`, `voices`); the hand-over's
form and clicks are a surface (`bot.surfaces.handover`). Who is told about a pause is `bot.notify`, beside
`bot.policy`.

May import runs, delivery, the Slack Web API side, store, blocks and the top-level foundations; never
surfaces or `bot.slack`'s entry side.
"""
