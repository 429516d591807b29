"""bot/'s imports go one way and never in a circle (issue 25; DESIGN.md "Layout").

A small walk over the `import` statements of every module under bot/, at any depth: imports inside
functions count, and so do imports under `if TYPE_CHECKING:` (no exemption: a type named from a higher
layer is a dependency on it too; where a lower layer needs one, it moves down, as `bot.approvals.types`
did). Every import must go down the layers (or stay in its own layer), and no modules may import each
other in a circle, whatever their layers. Dynamic imports (`importlib.import_module("bot.examples")` in
`bot.registry.load_registry`, the way any KERN_WORKFLOWS module is loaded) are not seen.

A new module under bot/ must be given its layer in LAYERS (the most specific prefix wins).
"""

from __future__ import annotations

from tests.import_graph import ROOT, circles, import_graph

BOT = ROOT / "bot"

# Top to bottom. A module may import its own layer and the layers after it, never one before it.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "entry",
        [
            "bot.cli",
            "bot.slack",
            "bot.slack.app",
            "bot.slack.server",
            "bot.slack.oauth",
            "bot.slack.inbound",
            "bot.slack.dedupe",
            "bot.slack.health",
            "bot.slack.connections",
            "bot.slack.oauth_state",
            "bot.slack.ops",
            "bot.slack.acknowledged",  # t24-acks, once merged and moved
            "bot.devslack",
        ],
    ),
    ("surfaces", ["bot.surfaces"]),
    ("approvals", ["bot.approvals"]),
    ("runs", ["bot.runs"]),
    ("delivery", ["bot.delivery"]),
    (
        "slack web api",
        [
            "bot.slack.gateway",
            "bot.slack.workspaces",
            "bot.slack.installations",
            "bot.slack.pacing",
            "bot.slack.errors",
            "bot.slack.identity",
            "bot.slack.files",
        ],
    ),
    ("store", ["bot.store"]),
    (
        "foundations",
        [
            "bot",
            "bot.blocks",
            "bot.registry",
            "bot.policy",
            "bot.pause_history",
            "bot.notify",
            "bot.config",
            "bot.token_keys",
            "bot.logs",
            "bot.examples",
            "bot.scripted_model",
        ],
    ),
]
PURE = "bot.blocks"  # imports nothing of the bot's but itself


def modules() -> list[str]:
    return list(graph())


def graph() -> dict[str, set[str]]:
    """module -> the bot modules it imports, `if TYPE_CHECKING:` imports included (a package's own __init__
    is not counted as imported when a module of it is)."""
    return {module: set(edges) for module, edges in import_graph(BOT, type_checking=True).items()}


def layer(module: str) -> int:
    """The index of `module`'s layer in LAYERS (the most specific prefix wins; the bare "bot" names the
    package itself only), or -1 when it has none."""
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            fits = module == prefix or (prefix != "bot" and module.startswith(prefix + "."))
            if fits and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in modules() if layer(m) < 0 and not m.startswith("bot.store.migrations.versions"))
    assert not unplaced, f"give these bot/ modules a layer in LAYERS (and a sub-package): {unplaced}"


def test_no_import_circles_in_bot() -> None:
    assert circles(graph()) == []


def test_imports_go_down_the_layers() -> None:
    upward = [
        f"{module} ({LAYERS[layer(module)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
        for module, targets in sorted(graph().items())
        for target in sorted(targets)
        if 0 <= layer(target) < layer(module)
    ]
    assert upward == []


def test_blocks_are_pure() -> None:
    impure = [
        f"{module} imports {target}"
        for module, targets in sorted(graph().items())
        if module == PURE or module.startswith(PURE + ".")
        for target in sorted(targets)
        if not (target == PURE or target.startswith(PURE + "."))
    ]
    assert impure == []


def test_the_walk_sees_circles_and_upward_imports() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("bot.surfaces.interactions") < layer("bot.approvals.ballots") < layer("bot.store.tables")
    assert layer("bot.slack.app") < layer("bot.delivery.outbox") < layer("bot.slack.gateway")
    assert layer("bot.something_new") == -1
