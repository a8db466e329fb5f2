"""deploy/: the compose file, the Kubernetes manifests and the Dockerfiles, checked offline.

Docker is not run here: these tests are what keeps the build files true. They validate
against schemas (Compose spec, Kubernetes via kubernetes-validate, KEDA's CRD-derived
schema in tests/deploy/schemas), check that every INFERQ_* variable set is one the
settings read, and that every file an image copies exists.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).with_name("schemas")
K8S_VERSION = "1.30"
#: Where the INFERQ_* names a service reads are spelled out.
SETTINGS_SOURCES = ["schemas/bus_settings.py", "ingest/settings.py", "runner/settings.py",
                    "notifier/settings.py", "inferq/cli.py", "obs/tracing.py"]


def known_env() -> set[str]:
    names: set[str] = set()
    for rel in SETTINGS_SOURCES:
        names |= set(re.findall(r'"(INFERQ_[A-Z0-9_]+)"', (ROOT / rel).read_text()))
    return names


def compose() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return out


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in k8s_docs() if d["kind"] == kind]


# compose -----------------------------------------------------------------------------
def test_compose_validates_against_the_compose_spec() -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft201909Validator(schema).validate(compose())


def test_compose_runs_kraft_kafka_topics_and_every_service() -> None:
    services = compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "healthcheck" in kafka
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    runners = {n: s for n, s in services.items() if s.get("command") == ["runner"]}
    assert len(runners) == 2
    gpu = [s for s in runners.values() if "deploy" in s]
    assert len(gpu) == 1
    device = gpu[0]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    # The GPU runner keeps the CPU provider to fall back on.
    assert gpu[0]["environment"]["INFERQ_PROVIDERS"].endswith("CPUExecutionProvider")
    for name in ("ingest", "notifier", *runners):
        assert services[name]["depends_on"]["topics"]["condition"] == \
            "service_completed_successfully", name
        assert services[name]["environment"]["INFERQ_KAFKA_BOOTSTRAP"] == "kafka:9092"
    # Models are file URIs: ingest writes them where the runners read them.
    model_dir = services["ingest"]["environment"]["INFERQ_MODEL_DIR"]
    for name in ("ingest", *runners):
        mounts = [v.split(":") for v in services[name]["volumes"]]
        assert ["models", model_dir] in [m[:2] for m in mounts], name
    assert "models" in compose()["volumes"]


def env_names_set() -> dict[str, set[str]]:
    """INFERQ_* names each deploy file sets."""
    found: dict[str, set[str]] = {}
    for name, svc in compose()["services"].items():
        found[f"compose:{name}"] = {k for k in svc.get("environment", {})
                                    if k.startswith("INFERQ_")}
    for fname, doc in k8s_docs():
        names: set[str] = set()
        if doc["kind"] in ("ConfigMap",):
            names |= set(doc.get("data", {}))
        if doc["kind"] == "Secret":
            names |= set(doc.get("stringData", {})) | set(doc.get("data", {}))
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            names |= {e["name"] for e in c.get("env", [])}
        found[f"k8s:{fname}:{doc['metadata']['name']}"] = {
            n for n in names if n.startswith("INFERQ_")}
    for path in (DEPLOY / "docker").glob("Dockerfile*"):
        found[f"docker:{path.name}"] = set(re.findall(r"\b(INFERQ_[A-Z0-9_]+)=", path.read_text()))
    return found


def test_every_env_var_set_is_read_by_the_settings() -> None:
    known = known_env()
    assert {"INFERQ_KAFKA_BOOTSTRAP", "INFERQ_RUNNER_PORT", "INFERQ_NOTIFIER_HOST"} <= known
    for where, names in env_names_set().items():
        assert names <= known, f"{where} sets {sorted(names - known)}, which no settings read"
    assert any(env_names_set().values())


def test_the_healthcheck_reads_the_same_port_variables_as_the_services() -> None:
    text = (DEPLOY / "docker" / "healthcheck.py").read_text()
    assert set(re.findall(r'"(INFERQ_[A-Z0-9_]+)"', text)) <= known_env()


# Dockerfiles ---------------------------------------------------------------------------
def dockerfile_lines(path: Path) -> list[str]:
    """Instructions with continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        if raw.strip().startswith("#") and not current:
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            if current.strip():
                lines.append(current.strip())
            current = ""
    return lines


DOCKERFILES = sorted((DEPLOY / "docker").glob("Dockerfile*"))


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_what_exists_and_runs_unprivileged(path: Path) -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]
    copied: set[str] = set()
    stages: list[list[str]] = []
    for line in dockerfile_lines(path):
        op, _, rest = line.partition(" ")
        if op.upper() == "FROM":
            stages.append([])
        if stages:  # global ARGs come before the first FROM
            stages[-1].append(line)
        if op.upper() in ("COPY", "ADD"):
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            if "--from=" in rest:
                continue
            for src in args[:-1]:
                assert (ROOT / src).exists(), f"{path.name}: COPY source {src} does not exist"
                assert src.split("/")[0] not in ignored, f"{src} is in .dockerignore"
                copied.add(src.split("/")[0])
    # Every package pyproject installs is in the build context the image copies.
    assert set(packages) <= copied, sorted(set(packages) - copied)
    assert {"pyproject.toml", "constraints.txt", "README.md"} <= copied
    # Every final stage (the images) runs as a non-root uid and has a healthcheck.
    finals = [s for s in stages if not s[0].rstrip().endswith(" AS build")]
    for stage in finals:
        inherited = [s for s in stages if s[0].split()[-1] in stage[0].split()[1:2]]
        body = stage + [line for s in inherited for line in s]
        users = [line.split()[1] for line in body if line.upper().startswith("USER ")]
        if not users:
            continue  # a stage only others build on (checked through them)
        assert users[-1] not in ("0", "root"), stage[0]
        assert any(line.upper().startswith("HEALTHCHECK ") for line in body), stage[0]
        assert any(line.upper().startswith("ENTRYPOINT ") for line in body), stage[0]


def test_images_cover_the_service_and_both_runner_variants() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM base AS service$", text, re.M)
    assert re.search(r"^FROM base AS runner-cpu$", text, re.M)
    assert "onnxruntime==" in text  # the CPU images swap in the CPU wheel
    cuda = (DEPLOY / "docker" / "Dockerfile.cuda").read_text()
    assert "nvidia/cuda:" in cuda and "cudnn" in cuda
    targets = {s["build"].get("target", "cuda") for s in compose()["services"].values()
               if "build" in s}
    assert targets == {"service", "runner-cpu", "cuda"}


# Kubernetes ---------------------------------------------------------------------------
def test_manifests_validate_against_kubernetes_and_keda_schemas() -> None:
    keda = json.loads((SCHEMAS / "keda-scaledobject-v1alpha1.json").read_text())
    kinds = []
    for _, doc in k8s_docs():
        kinds.append(doc["kind"])
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.Draft202012Validator(keda).validate(doc)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert {"Deployment", "Service", "ScaledObject", "PodDisruptionBudget", "ConfigMap",
            "Secret", "Job"} <= set(kinds)


def test_a_typo_fails_validation() -> None:
    (deployment,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "inferq-ingest"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    (so,) = of_kind("ScaledObject")
    keda = json.loads((SCHEMAS / "keda-scaledobject-v1alpha1.json").read_text())
    bad = json.loads(json.dumps(so))
    bad["spec"]["minReplicas"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(keda).validate(bad)


def test_deployments_probe_and_the_runner_scales_to_zero_on_group_lag() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    assert set(deployments) == {"inferq-ingest", "inferq-notifier", "inferq-runner"}
    for name, d in deployments.items():
        (c,) = d["spec"]["template"]["spec"]["containers"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()
    runner = deployments["inferq-runner"]
    assert "replicas" not in runner["spec"]  # KEDA owns the count
    (rc,) = runner["spec"]["template"]["spec"]["containers"]
    assert rc["resources"]["limits"]["nvidia.com/gpu"] == "1"
    (config,) = of_kind("ConfigMap")
    (so,) = of_kind("ScaledObject")
    assert so["spec"]["scaleTargetRef"]["name"] == "inferq-runner"
    assert so["spec"]["minReplicaCount"] == 0
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    md = trigger["metadata"]
    assert md["consumerGroup"] == config["data"]["INFERQ_RUNNER_GROUP"]
    assert md["topic"] == config["data"]["INFERQ_TOPIC_PREFIX"] + "requests"
    assert md["bootstrapServers"] == config["data"]["INFERQ_KAFKA_BOOTSTRAP"]
    assert so["spec"]["maxReplicaCount"] <= int(config["data"]["INFERQ_PARTITIONS"])
    # Every PDB and Service selects pods some Deployment makes.
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for obj in of_kind("PodDisruptionBudget") + of_kind("Service"):
        sel = obj["spec"]["selector"]
        sel = sel.get("matchLabels", sel)
        assert any(sel.items() <= labels.items() for labels in pod_labels), obj["metadata"]
