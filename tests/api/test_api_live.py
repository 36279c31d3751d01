"""`crisis serve` for real: uvicorn on 127.0.0.1 with the scheduler, driven over HTTP by httpx2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx2
from apihelpers import API, PW
from helpers import crisis_env

CRISIS = [sys.executable, "-m", "crisis"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "server exited"
        try:
            res = httpx2.get(f"{base}{API}/health", timeout=2)
            if res.status_code == 200:
                return res.json()
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become healthy")


def test_serve_runs_api_and_scheduler(tmp_path):
    env = {**os.environ, **crisis_env(tmp_path), "CRISIS_SIGNALS_SECRET": "s3cret"}
    subprocess.run([*CRISIS, "db", "init"], env=env, check=True, capture_output=True, timeout=60)
    subprocess.run([*CRISIS, "user", "set-password", "publicity_head"], input=PW + "\n", text=True, env=env,
                   check=True, capture_output=True, timeout=60)
    port = _free_port()
    proc = subprocess.Popen([*CRISIS, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait_healthy(base, proc)
        assert health["scheduler"]["state"] == "running" and health["scheduler"]["in_process"]["loop_alive"] is True
        with httpx2.Client(base_url=base, timeout=10) as c:
            assert c.get(f"{API}/incidents").status_code == 401
            login = c.post(f"{API}/auth/login", json={"person": "publicity_head", "password": PW})
            assert login.status_code == 200, login.text
            csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
            res = c.post(f"{API}/incidents", json={"title": "网传", "category": "medical_dispute"}, headers=csrf)
            assert res.status_code == 201, res.text
            assert c.get(f"{API}/incidents").json()["total"] == 1
            # the in-process scheduler's delivery thread sends what the command queued
            deadline = time.monotonic() + 10
            while not (tmp_path / "notifications.jsonl").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        # a second scheduler on the same database is refused: the leader lock holds across processes
        other = subprocess.run([*CRISIS, "scheduler", "run"], env=env, capture_output=True, text=True, timeout=60)
        assert other.returncode == 2 and "another scheduler" in other.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert (tmp_path / "notifications.jsonl").exists()  # commands delivered their notifications
