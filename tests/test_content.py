"""The templates and texts are read once per (re)load, with the flows, and every part that sends the
shop's words uses that one reading: the flow loader, the order and appointment notices, the reminders,
the handoff desk and its guards. An edit reaches all of them at once; none reads templates/ on its own."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from bot.app import ENGINE, PIPELINE, WORKERS
from tests.helpers import REPO, BotFactory, eventually

READERS = {"load_templates", "load_texts", "load_content", "load_shop_content"}
"""The functions that read templates/."""
MAY_READ = {
    Path("bot/engine/content.py"),  # the one reading: templates and texts together
    Path("bot/engine/flows.py"),  # load_flows(directory, actions, a folder): a test's or a tool's
    Path("bot/wiring.py"),  # how the server, the simulator and the commands read it
    Path("bot/pipeline.py"),  # where it is read for the parts at start-up
}
"""Outside bot/cli/ (the commands, which check the files themselves: doctor, templates sync)."""


def test_no_part_reads_templates_on_its_own() -> None:
    readers: list[str] = []
    for path in sorted((REPO / "bot").rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative in MAY_READ or relative.parts[:2] == ("bot", "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in READERS:
                    readers.append(f"{relative}:{node.lineno} calls {name}")
    assert readers == []


async def test_one_reading_per_load_serves_every_part(
    bot_client: BotFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "live-templates"
    shutil.copytree(REPO / "templates", templates)
    reminder = templates / "appointment_reminder.yaml"
    reads: list[Path] = []
    read_text = Path.read_text

    def counted(path: Path, *args: object, **kwargs: object) -> str:
        if path == reminder:
            reads.append(path)
        return read_text(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counted)
    flows = f"flows:\n  directory: {REPO / 'flows'}\n  reload_seconds: 0.1\n"
    client = await bot_client(extra=flows + f"templates:\n  directory: {templates}\n")
    assert len(reads) == 1  # at start-up: once, for everyone

    engine, pipeline, workers = client.app[ENGINE], client.app[PIPELINE], client.app[WORKERS]
    started_with = engine.flows
    reminder.write_text(read_text(reminder, encoding="utf-8") + "\n# saved again\n", encoding="utf-8")
    await eventually(lambda: engine.flows is not started_with, within=10)
    assert len(reads) == 2  # the reload: once more, for everyone

    served = engine.flows.content
    assert served is not started_with.content
    assert pipeline.content() is served
    assert pipeline.desk.catalog is served.templates
    assert workers.reminders._content() is served
    assert workers.guards._content() is served
