"""The edge to Slack.

Entry side: the HTTP server (`server`) and its guard on slow connections (`connections`), the Bolt app that
wires every listener (`app`), the checks on each request (`inbound`), the record of requests already acted
on (`dedupe`), OAuth installs (`oauth`, their signed states in `oauth_state`), `health` and the operations
port (`ops`). These may import every layer below (surfaces, approvals, runs, delivery, store) and are imported
only by `bot.cli`.

Web API side: the gateway to Slack's Web API (`gateway`), what Slack's errors mean (`errors`) and its rate
limits allow (`pacing`), which workspace a call is for (`workspaces`), the installations' tokens
(`installations`) and who a user is (`identity`, `users.info`). These sit just above the store: delivery and every layer
above may import them; they import only `bot.store`, `bot.blocks` and the top-level foundations
(`bot.config`, `bot.logs`, ...), never the entry side.
"""
