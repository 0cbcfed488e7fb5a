"""Structural checks of the deployment files that no schema catches (run by validate.sh).

    python deploy/checks.py COMPOSE_JSON K8S_RENDERED_YAML

COMPOSE_JSON is `docker compose config --format json` of docker-compose.yml (anchors and
merge keys resolved); K8S_RENDERED_YAML is `kubectl kustomize deploy/k8s`. It also checks
deploy/requirements.lock against pyproject.toml. Needs PyYAML. Exits 1 on any failure.
"""

from __future__ import annotations

import json
import re
import runpy
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"pipeline_api": "8000", "forecast_worker": "8001", "comp_engine": "8002"}
REQUIRED_ENV = (
    "SALESOPS_DATABASE_URL",
    "SALESOPS_KAFKA_BOOTSTRAP_SERVERS",
    "SALESOPS_API_KEYS",
    "SALESOPS_ENVIRONMENT",
    "SALESOPS_TOPIC_PARTITIONS",
    "SALESOPS_LOG_JSON",
)

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def check_compose(compose: dict[str, Any]) -> None:
    services = compose["services"]
    check(
        set(services) == {"postgres", "kafka", "kafka-init", "migrate", *SERVICES},
        f"compose services are postgres, kafka, kafka-init, migrate and {', '.join(SERVICES)}",
    )
    init = services["kafka-init"]
    script = " ".join(init.get("command", []))
    check(
        init.get("depends_on", {}).get("kafka", {}).get("condition") == "service_healthy",
        "kafka-init waits for kafka healthy",
    )
    topics = runpy.run_path(str(ROOT / "shared" / "topics.py"))
    missing = [s.name for s in topics["all_topics"](3) if s.name not in script]
    check(not missing, f"kafka-init creates every topic of shared/topics.py (missing: {missing})")
    check(
        topics["INCARNATION"] in script and "retention.ms=-1" in script,
        "kafka-init keeps the broker-incarnation topic forever",
    )
    check(services["kafka"]["image"].startswith("apache/kafka:3."), "kafka image pinned")
    check(services["postgres"]["image"].startswith("postgres:16."), "postgres 16 pinned")
    for name in ("postgres", "kafka"):
        check(bool(services[name].get("healthcheck", {}).get("test")), f"{name} has a healthcheck")
    check("pg_isready" in str(services["postgres"]["healthcheck"]["test"]), "postgres pg_isready")
    check("kafka-topics.sh" in str(services["kafka"]["healthcheck"]["test"]), "kafka topics check")
    env = services["kafka"]["environment"]
    check(env.get("KAFKA_PROCESS_ROLES") == "broker,controller", "kafka runs KRaft combined")
    check("PLAINTEXT://kafka:9092" in env.get("KAFKA_ADVERTISED_LISTENERS", ""), "kafka:9092")
    cluster_id = env.get("CLUSTER_ID", "")
    check(re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id) is not None, "CLUSTER_ID is a UUID")

    volumes = set(compose.get("volumes", {}))
    data_dirs = {"postgres": "/var/lib/postgresql/data", "kafka": "/var/lib/kafka/data"}
    for name, target in data_dirs.items():
        mounts = services[name].get("volumes", [])
        check(
            any(
                m.get("type") == "volume"
                and m.get("source") in volumes
                and m.get("target") == target
                for m in mounts
            ),
            f"{name} keeps its data in a named volume at {target}",
        )

    migrate = services["migrate"]
    check(migrate.get("command") == ["migrate"], "migrate runs `salesops migrate`")
    check(
        migrate.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
        "migrate waits for postgres healthy",
    )
    check(migrate.get("restart", "no") == "no", "migrate is one-shot")

    partitions = None
    for name, host_port in SERVICES.items():
        svc = services[name]
        check(svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile", f"{name} builds image")
        check(svc.get("command", [])[:2] == ["serve", name], f"{name} serves {name}")
        deps = svc.get("depends_on", {})
        check(
            deps.get("migrate", {}).get("condition") == "service_completed_successfully",
            f"{name} waits for migrate to complete",
        )
        check(deps.get("kafka", {}).get("condition") == "service_healthy", f"{name} waits kafka")
        check(
            deps.get("kafka-init", {}).get("condition") == "service_completed_successfully",
            f"{name} waits for kafka-init",
        )
        check("/readyz" in str(svc.get("healthcheck", {}).get("test")), f"{name} checks /readyz")
        check(svc.get("restart") == "unless-stopped", f"{name} restart unless-stopped")
        ports = svc.get("ports", [])
        check(
            any(str(p.get("published")) == host_port and p.get("target") == 8000 for p in ports),
            f"{name} published on host port {host_port}",
        )
        environment = svc.get("environment", {})
        check(all(environment.get(k) for k in REQUIRED_ENV), f"{name} has every SALESOPS_* var")
        check(environment.get("SALESOPS_ENVIRONMENT") == "production", f"{name} production mode")
        keys = json.loads(environment.get("SALESOPS_API_KEYS", "{}"))
        check(isinstance(keys, dict) and len(keys) > 0, f"{name} SALESOPS_API_KEYS parses")
        partitions = environment.get("SALESOPS_TOPIC_PARTITIONS")
    check(str(env.get("KAFKA_NUM_PARTITIONS")) == partitions, "broker default partitions match")
    check(f"--partitions {partitions} " in script, "kafka-init creates topics with the same count")


def _pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def check_k8s(docs: list[dict[str, Any]]) -> None:
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    check("salesops" in by_kind.get("Namespace", {}), "namespace salesops")
    config = by_kind["ConfigMap"]["salesops-config"]["data"]
    check("SALESOPS_DATABASE_URL" not in config, "database URL is not in the ConfigMap")
    check("SALESOPS_API_KEYS" not in config, "API keys are not in the ConfigMap")
    check("Secret" not in by_kind, "no placeholder Secret in the kustomize output")
    partitions = int(config["SALESOPS_TOPIC_PARTITIONS"])

    job = by_kind["Job"]["salesops-migrate"]
    check(job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"], "migrate Job")

    deployments = by_kind["Deployment"]
    for svc in SERVICES:
        name = "salesops-" + svc.replace("_", "-")
        dep = deployments.get(name)
        check(dep is not None, f"Deployment {name}")
        if dep is None:
            continue
        check(name in by_kind["Service"], f"Service {name}")
        main = dep["spec"]["template"]["spec"]["containers"][0]
        check(main["args"][:2] == ["serve", svc], f"{name} serves {svc}")
        check(main["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name} readiness /readyz")
        check(main["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name} liveness /healthz")
        for c in _pod_containers(dep):
            res = c.get("resources", {})
            check(
                {"cpu", "memory"} <= set(res.get("requests", {}))
                and {"cpu", "memory"} <= set(res.get("limits", {})),
                f"{name}/{c['name']} has requests and limits",
            )
            refs = {(k, v["name"]) for e in c.get("envFrom", []) for k, v in e.items()}
            check(
                refs == {("configMapRef", "salesops-config"), ("secretRef", "salesops-secrets")},
                f"{name}/{c['name']} takes the ConfigMap and the Secret",
            )
        selector = dep["spec"]["selector"]["matchLabels"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        check(selector.items() <= labels.items(), f"{name} selector matches its pods")
        check(
            by_kind["Service"][name]["spec"]["selector"].items() <= labels.items(),
            f"Service {name} selects its pods",
        )
    check(deployments["salesops-pipeline-api"]["spec"]["replicas"] == 2, "pipeline_api x2")
    fw = deployments["salesops-forecast-worker"]["spec"]["replicas"]
    check(fw <= partitions, f"forecast_worker replicas {fw} <= topic partitions {partitions}")
    pdb = by_kind.get("PodDisruptionBudget", {}).get("salesops-pipeline-api")
    check(
        pdb is not None
        and pdb["spec"]["selector"]["matchLabels"].items()
        <= deployments["salesops-pipeline-api"]["spec"]["template"]["metadata"]["labels"].items(),
        "PodDisruptionBudget selects pipeline_api",
    )


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked: dict[str, str] = {}
    for line in (ROOT / "deploy" / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            locked[_norm(name)] = version
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", requirement.strip())
        check(match is not None, f"pyproject pins {requirement} exactly")
        if match:
            name, version = _norm(match[1]), match[3]
            check(locked.get(name) == version, f"lock has {name}=={version}")


def main() -> int:
    compose = json.loads(Path(sys.argv[1]).read_text())
    docs = [d for d in yaml.safe_load_all(Path(sys.argv[2]).read_text()) if d]
    check_compose(compose)
    check_k8s(docs)
    check_lock()
    print(f"{len(failures)} failed" if failures else "all structural checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
