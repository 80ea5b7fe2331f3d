"""tools/local_processes.py: a launcher told to stop (SIGTERM, Ctrl-C) passes one SIGTERM to each
of its processes, waits for them, and says it was stopped, so tools/launch_workers.py does not
restart them."""

import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from tools import local_processes

# Exits 143 on SIGTERM, as app.train does after its backup; says when it got one.
_WORKER = """import signal, sys, time
def stop(signum, frame):
  print("SIGTERM", flush=True)
  sys.exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_signal_to_the_launcher_is_passed_on_once_and_ends_the_wait():
  workers = [subprocess.Popen([sys.executable, "-c", _WORKER], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
  for worker in workers:
    assert worker.stdout.readline() == "ready\n"
  saved = signal.getsignal(signal.SIGINT)
  threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()  # Ctrl-C
  assert local_processes.wait(workers) == 128 + signal.SIGINT
  assert local_processes.stopped_by_signal() == signal.SIGINT
  assert signal.getsignal(signal.SIGINT) is saved
  for worker in workers:
    assert worker.returncode == 128 + signal.SIGTERM
    assert worker.stdout.read() == "SIGTERM\n"  # one, not one per signal


def test_a_failed_process_is_no_stop_signal():
  workers = [subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])]
  assert local_processes.wait(workers) == 3
  assert local_processes.stopped_by_signal() is None


def test_free_ports_are_distinct_and_bindable():
  ports = local_processes.free_ports(3) + local_processes.free_ports(3)
  assert len(set(ports)) == 6
  for port in ports:  # free now, on all interfaces, as the cluster's gRPC servers bind
    socket.create_server(("", port)).close()


def test_free_ports_are_reserved_with_a_portserver_where_one_runs(tmp_path, monkeypatch):
  # portpicker's protocol: the client sends its pid and a newline, the server answers a port.
  address = str(tmp_path / "portserver.sock")
  server = socket.socket(socket.AF_UNIX)
  server.bind(address)
  server.listen()
  requests = []

  def serve():
    for port in (23001, 23002):
      connection, _ = server.accept()
      with connection:
        requests.append(connection.recv(64))
        connection.sendall(f"{port}\n".encode())

  thread = threading.Thread(target=serve, daemon=True)
  thread.start()
  monkeypatch.setenv("PORTSERVER_ADDRESS", address)
  assert local_processes.free_ports(2) == [23001, 23002]
  thread.join(timeout=5)
  server.close()
  assert requests == [f"{os.getpid()}\n".encode()] * 2


def test_gpus_are_indices_or_uuids():
  assert local_processes.parse_gpus("") == []
  assert local_processes.parse_gpus("0, 3") == ["0", "3"]
  uuid = "GPU-8a1b2c3d-0000-1111-2222-333344445555"
  assert local_processes.parse_gpus(f"{uuid},MIG-{uuid[4:]}") == [uuid, f"MIG-{uuid[4:]}"]


@pytest.mark.parametrize("gpus, message", [("0,,1", "'' is no GPU"), ("gpu0", "'gpu0' is no GPU"),
                                           ("1,0,1", "names GPU 1 more than once")])
def test_bad_gpus_say_what_to_pass(gpus, message):
  with pytest.raises(ValueError, match=rf"^--gpus={gpus}: .*|^--gpus={gpus} names") as refused:
    local_processes.parse_gpus(gpus)
  assert message in str(refused.value)


def test_processes_beyond_the_gpus_share_them_round_robin():
  assert local_processes.round_robin(["a", "b", "c"], ["0", "1"]) == {"a": "0", "b": "1", "c": "0"}
  assert local_processes.round_robin(["a"], []) == {}
  assert local_processes.describe_gpus({"a": "0", "b": "1"}) == "GPU 0: a; GPU 1: b"
  assert "3 processes on 2 GPU(s) share them" in local_processes.describe_gpus(
      {"a": "0", "b": "1", "c": "0"})
