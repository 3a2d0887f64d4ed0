"""The vLLM launcher's profiles, command lines and refusals (no server is started here)."""

import socket

import pytest

from server.demo import summary_table
from server.launch import (
    LaunchError,
    advertised_urls,
    check_can_launch,
    gpu_ids,
    load_profile,
    profile_names,
    server_command,
    write_endpoints_file,
)


def test_profiles_are_data_files():
    assert {"a30", "h100", "h200", "cpu-demo"} <= set(profile_names())
    a30 = load_profile("a30")
    assert a30.device == "cuda" and a30.dtype == "float16" and a30.max_model_len >= 1152
    assert 0.8 <= a30.gpu_memory_utilization <= 0.95


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(LaunchError, match="unknown profile 'b200'; choose one of: a30"):
        load_profile("b200")


def test_cpu_demo_command_runs_the_module_not_the_console_script():
    command = server_command(load_profile("cpu-demo"), "./m", "127.0.0.1", 8123)
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(command)
    assert "--model ./m" in joined and "--port 8123" in joined and "--enforce-eager" in joined
    assert "--dtype float32" in joined and "--max-model-len 8192" in joined


def test_gpu_specs():
    assert gpu_ids("2") == ["0", "1"]
    assert gpu_ids("1,3") == ["1", "3"]


def test_port_in_use_is_refused():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LaunchError, match=f"port {port} on 127.0.0.1 is in use"):
            check_can_launch(load_profile("cpu-demo"), ".", "127.0.0.1", [port])


def test_missing_model_folder_is_refused(tmp_path):
    with pytest.raises(LaunchError, match="does not exist; build the demo model"):
        check_can_launch(load_profile("cpu-demo"), str(tmp_path / "none"), "127.0.0.1", [0])


def test_demo_table_shows_each_run_and_a_failed_one():
    results = {"scenario": "Server", "mode": "performance",
               "loadgen": {"result": "VALID", "tokens_per_second": 1000.0,
                           "ttft_ms": {"p99": 250.0}, "tpot_ms": {"p99": 20.5}},
               "client": {"errors": 0, "output_tokens_per_second": 990.0,
                          "ttft_ms": {"p99": 240.0}, "tpot_ms": {"p99": 20.0}}}
    table = summary_table([("server", results), ("offline", None)])
    assert "Server" in table and "VALID" in table and "1,000.0" in table and "20.50" in table
    assert "offline    (no results.json" in table


def test_endpoints_file_lists_every_server_by_the_advertised_host(tmp_path):
    urls = advertised_urls(["http://0.0.0.0:8000", "http://0.0.0.0:8001"], "gpu-node-3")
    path = tmp_path / "run" / "endpoints"
    write_endpoints_file(path, urls)
    assert path.read_text() == "http://gpu-node-3:8000\nhttp://gpu-node-3:8001\n"
    assert not path.with_name("endpoints.partial").exists()
