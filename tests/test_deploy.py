"""deploy/: every manifest parses and is checked — images, commands (parsed by the real CLI
parser), ports, probes, mounted paths that exist in the repository, secrets, the systemd
sandbox. No container engine is needed: these are static checks of the files."""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from newswatch.cli import build_parser
from newswatch.core.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
CLUSTER = load_config(DEPLOY / "example" / "cluster.yaml")
ROLES = {"run", "poll", "worker", "status"}
CONFIG_IN_CONTAINER = "/etc/newswatch/config.yaml"
SECRETS = {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SMTP_PASSWORD", "KAFKA_SASL_PASSWORD"}
PACKAGE_FOLDERS = ("newswatch", "rules", "monitor", "streams")  # read through the real folders


def cli_accepts(args: list[str]) -> None:
    """The command line parses with newswatch's own parser (argparse exits 2 otherwise)."""
    parsed = build_parser().parse_args(args)
    assert parsed.command in ROLES


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


# ------------------------------------------------------------------ Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "docker" / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_non_root_with_one_entrypoint() -> None:
    steps = dockerfile()
    froms = [rest for op, rest in steps if op == "FROM"]
    assert froms == ["python:3.11-slim AS build", "python:3.11-slim AS runtime"]
    users = [rest for op, rest in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    runtime = [op for op, _ in steps][[rest for _, rest in steps].index(froms[-1]):]
    assert "USER" in runtime  # set in the final stage
    entry = [yaml.safe_load(rest) for op, rest in steps if op == "ENTRYPOINT"]
    assert entry == [["newswatch"]]
    cmd = [yaml.safe_load(rest) for op, rest in steps if op == "CMD"]
    assert len(cmd) == 1 and cmd[0][0] in ROLES
    cli_accepts(cmd[0])
    assert cmd[0][cmd[0].index("--config") + 1] == CONFIG_IN_CONTAINER
    expose = [rest for op, rest in steps if op == "EXPOSE"]
    assert expose == [str(CLUSTER.metrics.port if CLUSTER.metrics else 0)]
    health = " ".join(rest for op, rest in steps if op == "HEALTHCHECK")
    assert "/healthz" in health and f":{expose[0]}/" in health


def test_dockerfile_copies_files_that_exist_and_are_not_dockerignored() -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copies = [rest for op, rest in dockerfile() if op == "COPY" and "--from=" not in rest]
    assert copies
    for rest in copies:
        *sources, _target = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not any(source == i or source.startswith(i.rstrip("/") + "/")
                           for i in ignored), f"{source} is excluded by .dockerignore"
    targets = {rest.split()[-1] for rest in copies}
    assert {CONFIG_IN_CONTAINER, "/etc/newswatch/watchlists"} <= targets


# ------------------------------------------------------------------ compose


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_runs_kafka_in_kraft_mode_from_the_official_image() -> None:
    kafka = compose()["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka["image"])
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    host, port = CLUSTER.kafka.bootstrap.split(":")
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{host}:{port}"
    assert kafka.get("hostname", "kafka") == host
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@{host}:9093"
    assert int(env["KAFKA_NUM_PARTITIONS"]) == CLUSTER.kafka.partitions
    assert "healthcheck" in kafka


def test_compose_has_one_poller_two_workers_with_config_secrets_and_metrics() -> None:
    data = compose()
    services = {name: s for name, s in data["services"].items() if name != "kafka"}
    roles = sorted(s["command"][0] for s in services.values())
    assert roles == ["poll", "worker", "worker"]
    host_ports = set()
    for name, service in services.items():
        cli_accepts(service["command"])
        assert service["command"][service["command"].index("--config") + 1] == \
            CONFIG_IN_CONTAINER, name
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        for env_file in service["env_file"]:
            if env_file["required"]:
                path = DEPLOY / env_file["path"]
                assert path.is_file()
                assert set(parse_env(path)) == SECRETS
        targets = {}
        for volume in service["volumes"]:
            source, target, *mode = volume.split(":")
            assert mode == ["ro"]
            assert (DEPLOY / source).exists(), f"{name}: {source} not in the repository"
            targets[target] = (DEPLOY / source).resolve()
        assert targets[CONFIG_IN_CONTAINER] == DEPLOY / "example" / "cluster.yaml"
        # the rule paths of the mounted config resolve to the mounted watchlists
        assert targets["/etc/newswatch/watchlists"] in {p for p in CLUSTER.rules}
        (port_map,) = service["ports"]
        host_port, container_port = port_map.rsplit(":", 2)[-2:]
        assert CLUSTER.metrics is not None and int(container_port) == CLUSTER.metrics.port
        host_ports.add(host_port)
    assert len(host_ports) == len(services)  # every metrics endpoint reachable, no clash
    assert "kafka-data" in data["volumes"]


def parse_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value
    return out


def test_the_secrets_listed_are_the_ones_the_code_reads() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for folder in PACKAGE_FOLDERS
                       for p in (ROOT / folder).rglob("*.py"))
    not_secrets = {"NEWSWATCH_LOG_FORMAT", "NEWSWATCH_CONFIG", "NEWSWATCH_CACHE_DIR",
                   "XDG_CACHE_HOME"}
    read = set(re.findall(r'environ\.get\("([A-Z_]+)"', source)) - not_secrets
    assert read == SECRETS
    secret = load_all(DEPLOY / "k8s" / "secret.example.yaml")[0]
    assert set(secret["stringData"]) == SECRETS


def test_cluster_config_watches_the_same_feeds_as_the_laptop_example() -> None:
    laptop = load_config(DEPLOY / "example" / "config.yaml")
    def without_lines(config: Any) -> list[Any]:
        return [dataclasses.replace(f, line=0) for f in config.feeds]

    assert without_lines(laptop) == without_lines(CLUSTER)
    assert laptop.receivers == CLUSTER.receivers and laptop.ops == CLUSTER.ops
    assert laptop.rules == CLUSTER.rules


# ------------------------------------------------------------------ kubernetes


def kustomization(folder: Path) -> dict[str, Any]:
    data = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    assert data["kind"] == "Kustomization"
    return dict(data)


def k8s_objects() -> list[dict[str, Any]]:
    objects = []
    for resource in kustomization(DEPLOY)["resources"]:
        folder = DEPLOY / resource
        for item in kustomization(folder)["resources"]:
            assert (folder / item).is_file(), item
            objects += load_all(folder / item)
    return objects


def deployments() -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == "Deployment"}


def test_kustomize_generates_configmaps_from_the_example_files() -> None:
    generators = {g["name"]: g for g in kustomization(DEPLOY)["configMapGenerator"]}
    assert generators["newswatch-config"]["files"] == ["config.yaml=example/cluster.yaml"]
    watchlists = generators["newswatch-watchlists"]
    assert watchlists["options"]["disableNameSuffixHash"] is True  # updated in place: hot reload
    shipped = sorted(f"example/watchlists/{p.name}"
                     for p in (DEPLOY / "example" / "watchlists").iterdir()
                     if p.suffix in (".yaml", ".yml"))
    assert sorted(watchlists["files"]) == shipped
    for generator in generators.values():
        for entry in generator["files"]:
            assert (DEPLOY / entry.split("=")[-1]).is_file()


@pytest.mark.parametrize("name,role", [("newswatch-poller", "poll"),
                                       ("newswatch-worker", "worker")])
def test_deployment_has_probes_resources_mounts_and_a_non_root_pod(name: str, role: str) -> None:
    deployment = deployments()[name]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert container["image"] == compose()["x-newswatch"]["image"]
    assert container["args"][0] == role
    cli_accepts(container["args"])
    assert CLUSTER.metrics is not None
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == CLUSTER.metrics.port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "SLACK_BOT_TOKEN"} not in container.get("env", [])
    assert container["envFrom"] == [{"secretRef": {"name": "newswatch-secrets"}}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for mount in mounts.values():
        assert mount["name"] in volumes
    config_mount = mounts[container["args"][container["args"].index("--config") + 1]]
    assert volumes[config_mount["name"]]["configMap"]["name"] == "newswatch-config"
    assert config_mount["subPath"] == "config.yaml"
    watch = mounts["/etc/newswatch/watchlists"]
    assert "subPath" not in watch  # a subPath mount would never see ConfigMap updates
    assert volumes[watch["name"]]["configMap"]["name"] == "newswatch-watchlists"
    assert "/var/lib/newswatch" in mounts  # the working directory is writable


def test_worker_replicas_stay_within_the_partitions_and_the_note_says_so() -> None:
    worker = deployments()["newswatch-worker"]
    assert 2 <= worker["spec"]["replicas"] <= CLUSTER.kafka.partitions
    note = worker["metadata"]["annotations"]["newswatch/note"]
    assert "partitions" in note and "docs/scaling.md" in note


def test_pod_disruption_budgets_select_each_deployment() -> None:
    budgets = [o for o in k8s_objects() if o["kind"] == "PodDisruptionBudget"]
    selected = set()
    for budget in budgets:
        labels = budget["spec"]["selector"]["matchLabels"]
        for name, deployment in deployments().items():
            if labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items():
                selected.add(name)
        assert "maxUnavailable" in budget["spec"] or "minAvailable" in budget["spec"]
    assert selected == set(deployments())


# ------------------------------------------------------------------ systemd


def unit() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / "newswatch.service").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_systemd_unit_restarts_on_failure_in_a_hardened_sandbox() -> None:
    service = unit()["Service"]
    one = {key: values[-1] for key, values in service.items()}
    assert one["Restart"] == "on-failure"
    assert one["RestartPreventExitStatus"] == "2"  # config errors: a restart would not help
    assert one["StateDirectory"] == "newswatch"
    assert one["WorkingDirectory"] == "/var/lib/newswatch"
    assert one["DynamicUser"] == "yes"
    for key, value in {"ProtectSystem": "strict", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                       "ProtectHome": "yes", "PrivateDevices": "yes",
                       "RestrictSUIDSGID": "yes"}.items():
        assert one[key] == value, key
    assert one["CapabilityBoundingSet"] == ""
    command = shlex.split(one["ExecStart"])
    assert command[0].endswith("/newswatch")
    assert command[1] == "run"
    cli_accepts(command[1:])
    assert unit()["Install"]["WantedBy"] == ["multi-user.target"]


# ------------------------------------------------------------------ real tools, when present
# kubectl (kustomize is built in) and systemd-analyze work offline. Where they are not
# installed these two tests check nothing more than the static tests above (they return
# rather than skip, because CI treats a skip as a failure).


def test_kubectl_kustomize_renders_and_wires_the_generated_configmaps(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return
    rendered = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True,
                              text=True, timeout=60, check=True).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "Namespace",
                     "PodDisruptionBudget", "PodDisruptionBudget"]
    maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    (config_map,) = [n for n in maps if n.startswith("newswatch-config-")]  # content hash
    assert yaml.safe_load(maps[config_map]["data"]["config.yaml"]) == yaml.safe_load(
        (DEPLOY / "example" / "cluster.yaml").read_text(encoding="utf-8"))
    assert set(maps["newswatch-watchlists"]["data"]) == {
        p.name for p in (DEPLOY / "example" / "watchlists").glob("*.yaml")}
    for o in objects:
        assert o["metadata"].get("namespace", "newswatch") == "newswatch"
        if o["kind"] == "Deployment":
            volumes = {v["name"]: v for v in o["spec"]["template"]["spec"]["volumes"]}
            assert volumes["config"]["configMap"]["name"] == config_map


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    text = (DEPLOY / "systemd" / "newswatch.service").read_text(encoding="utf-8")
    unit_file = tmp_path / "newswatch.service"  # the binary is not installed here
    unit_file.write_text(text.replace("/opt/newswatch/bin/newswatch", "/bin/true"))
    result = subprocess.run([analyze, "verify", str(unit_file)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "Invalid" not in result.stderr, result.stderr
