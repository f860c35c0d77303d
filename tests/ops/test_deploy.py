"""The systemd units in deploy/: hardened as the README says, and valid to systemd itself."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy").glob("*.service"))


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_the_units_are_hardened() -> None:
    assert [u.name for u in UNITS] == ["trainerbot-worker.service", "trainerbot.service"]
    for path in UNITS:
        service = _unit(path)["Service"]
        assert service["Restart"] == "on-failure" and service["User"] == "trainerbot", path.name
        assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "true"
        assert (
            service["ReadWritePaths"] == "/var/lib/trainerbot" and service["EnvironmentFile"] == "/etc/trainerbot/trainerbot.env"
        )
        assert service["CapabilityBoundingSet"] == "" and service["ProtectHome"] == "true"
        assert "TOKEN" not in path.read_text().split("[Service]")[1].replace("DISCORD_TOKEN, ", "")  # no secret inline
    assert _unit(ROOT / "deploy" / "trainerbot.service")["Service"]["ExecStart"].endswith("trainerbot run --no-worker")
    assert _unit(ROOT / "deploy" / "trainerbot-worker.service")["Service"]["ExecStart"].endswith("trainerbot worker")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is installed by `make test`")
def test_systemd_analyze_verify_accepts_them(tmp_path: Path) -> None:
    # The units name /opt/trainerbot; here the checkout (and its .venv) is elsewhere.
    assert (Path(sys.prefix) / "bin" / "trainerbot").exists()
    for path in UNITS:
        text = path.read_text().replace("/opt/trainerbot/.venv", sys.prefix).replace("/opt/trainerbot", str(ROOT))
        (tmp_path / path.name).write_text(text)
    run = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u.name) for u in UNITS)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr
    # …and the check is a real one: a broken copy is refused.
    broken = tmp_path / "broken.service"
    broken.write_text(
        (tmp_path / "trainerbot.service")
        .read_text()
        .replace("ProtectSystem=strict", "ProtectSystem=bogus")
        .replace(sys.prefix + "/bin/trainerbot", "/nonexistent/trainerbot")
    )
    refused = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "protect system value" in refused.stderr
