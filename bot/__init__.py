"""kern-bot: the Slack side of kern's human-in-the-loop pauses.

The tree by job, imports going one way, top to bottom (checked by tests/test_layering.py):

    bot/cli.py, bot/slack/ (entry side)  the `kern-bot` command; HTTP and Socket Mode entry, request checks,
                                         dedupe, OAuth, health
    bot/surfaces/                        what people touch: commands, clicks, modals, tool-call cards,
                                         start forms, App Home, welcome
    bot/approvals/                       who may do what: access rules, votes, hand-over, standing
                                         approvals, timers
    bot/runs/                            start and follow runs, background work, the sweeper
    bot/delivery/                        the outbox and how runs and pauses are presented
    bot/slack/ (Web API side)            the gateway, Slack's errors and rate limits, workspaces,
                                         installations
    bot/store/                           tables, migrations, records
    bot/blocks/, bot/registry.py, bot/policy.py, bot/notify.py, bot/config.py, bot/token_keys.py, bot/logs.py,
    bot/examples.py, bot/scripted_model.py
                                         foundations: pure Block Kit rendering, the public workflow
                                         registry and approval policies, settings, logging

`bot/devslack/` is Slack on this machine (tests, benchmarks, `kern-bot dev`). Users import `bot.registry`
and `bot.policy` only.
"""
