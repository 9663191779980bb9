"""W&B with a server that cannot be reached: a bounded wait, then one line and an offline run (real wandb library)."""

import logging
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, script_env
from utils.tracking import start_wandb


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.mark.parametrize(
    ("server", "settings", "bound"),
    [
        ("refused", {}, 8.0),  # the default timeout; a refused connection needs no waiting at all
        ("silent", {"settings": {"init_timeout": 2}}, 2.0 + 6.0),  # wandb.args.settings.init_timeout
    ],
)
def test_unreachable_server_falls_back_to_offline_within_the_timeout(
    tmp_path, monkeypatch, caplog, request, server, settings, bound
):
    port = free_port() if server == "refused" else request.getfixturevalue("silent_server")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_API_KEY", "0123456789" * 4)  # a key is set: wandb would try to go online
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for name in ("CONFIG", "CACHE", "DATA"):
        monkeypatch.setenv(f"WANDB_{name}_DIR", str(tmp_path / name.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    import wandb

    wandb.teardown()  # W&B keeps its settings in a process-wide singleton: start from this environment
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="utils.tracking"):
        run = start_wandb(True, {"project": "tests", **settings}, {"seed": 1}, tmp_path / "run", "teacher")
    elapsed = time.perf_counter() - started
    try:
        assert run is not None and run.offline
        assert elapsed < bound, f"waited {elapsed:.1f} s"
        (line,) = [r.getMessage() for r in caplog.records if r.name == "utils.tracking"]
        assert f"127.0.0.1:{port}" in line and "logging offline" in line
        sessions = Path(run.settings.sync_dir).parent / f"offline-run-*-{run.id}"  # all parts of a resumed run
        assert line.endswith(f"upload later with: wandb sync {sessions}")
        assert list(sessions.parent.glob(sessions.name)) == [Path(run.settings.sync_dir)]
        run.log({"loss": 1.0}, step=1)
    finally:
        if run is not None:
            run.finish()
        wandb.teardown()


def test_scripts_environment_does_not_resurrect_a_finished_wandb_service(tmp_path, monkeypatch):
    """W&B keeps its service's address in this process's environment (WANDB_SERVICE). A test that patches the
    scripts' environment in and tears W&B down must not bring back the address of the service it stopped: the
    next run in this process would try to reach a dead socket (seen in CI as WandbServiceConnectionError)."""
    import wandb

    for name in ("MODE", "SILENT", "CACHE_DIR", "CONFIG_DIR", "DATA_DIR"):
        monkeypatch.setenv(f"WANDB_{name}", script_env(tmp_path)[f"WANDB_{name}"])
    first = start_wandb(True, {"project": "tests"}, {"seed": 1}, tmp_path / "first", "teacher")
    assert first is not None
    first.finish()
    with pytest.MonkeyPatch.context() as patch:
        # built now, while W&B's service runs: what the README and resume tests do
        for name, value in script_env(tmp_path).items():
            patch.setenv(name, value)
        wandb.teardown()
    second = start_wandb(True, {"project": "tests"}, {"seed": 2}, tmp_path / "second", "teacher")
    try:
        assert second is not None and second.offline
        second.log({"loss": 1.0}, step=1)
    finally:
        if second is not None:
            second.finish()
        wandb.teardown()
