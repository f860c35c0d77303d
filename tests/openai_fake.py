"""An OpenAI-compatible server for tests, on 127.0.0.1 (``tests/httpfake.py``): chat
completions (plain and streamed as server-sent events), file upload, and fine-tuning jobs
with their events and cancel — the real request and response shapes — plus scripted
failures (401, 429 with Retry-After, 500, slow answers)."""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.httpfake import Request, Response

KEY = "sk-test-dummy-key-never-logged-0123456789"


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})


def error(
    status: int, message: str, code: str = "error", headers: dict[str, str] | None = None, delay_s: float = 0.0
) -> Response:
    r = _json(status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}, headers)
    r.delay_s = delay_s
    return r


@dataclass
class OpenAIFake:
    answer: str = "Quillport is the capital of Zorbia."
    failures: deque[Response] = field(default_factory=deque)  # answered before the next real response, in order
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    job_plan: list[str] = field(default_factory=lambda: ["validating_files", "running", "running", "succeeded"])
    refuse_fine_tuning: str | None = None  # a provider's reason to refuse job creation
    fail_job_with: str | None = None  # the job runs, then fails with this reason
    auth_failures: int = 0

    def __call__(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            self.auth_failures += 1
            return error(401, "Incorrect API key provided.", "invalid_api_key")
        if self.failures:
            return self.failures.popleft()
        path = request.path.removeprefix("/v1")
        if path == "/chat/completions" and request.method == "POST":
            return self._chat(json.loads(request.body))
        if path == "/files" and request.method == "POST":
            return self._upload(request)
        if path == "/fine_tuning/jobs" and request.method == "POST":
            return self._create_job(json.loads(request.body))
        if m := re.fullmatch(r"/fine_tuning/jobs/([\w-]+)", path):
            return self._retrieve(m.group(1))
        if m := re.fullmatch(r"/fine_tuning/jobs/([\w-]+)/events", path):
            return self._events(m.group(1))
        if m := re.fullmatch(r"/fine_tuning/jobs/([\w-]+)/cancel", path):
            return self._cancel(m.group(1))
        return error(404, f"Unknown path {path}", "not_found")

    # ------------------------------------------------------------------ chat
    def _chat(self, body: dict[str, Any]) -> Response:
        self.chat_requests.append(body)
        created = int(time.time())
        if not body.get("stream"):
            return _json(
                200,
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": created,
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": self.answer}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
                },
            )

        def events():  # type: ignore[no-untyped-def]
            words = self.answer.split(" ")
            for i, word in enumerate(words):
                delta = {"role": "assistant", "content": word if i == 0 else " " + word}
                chunk = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                time.sleep(0.35)
            done = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield f"data: {json.dumps(done)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return Response(200, events(), {"Content-Type": "text/event-stream"})

    # --------------------------------------------------------------- files
    def _upload(self, request: Request) -> Response:
        boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
        parts = {}
        for part in request.body.split(b"--" + boundary):
            if b"\r\n\r\n" not in part:
                continue
            head, content = part.split(b"\r\n\r\n", 1)
            name = re.search(rb'name="([^"]+)"', head)
            filename = re.search(rb'filename="([^"]+)"', head)
            if name:
                parts[name.group(1).decode()] = (filename.group(1).decode() if filename else None, content.rstrip(b"\r\n"))
        filename, content = parts["file"]
        fid = f"file-{len(self.files) + 1}"
        self.files[fid] = {"filename": filename, "purpose": parts["purpose"][1].decode(), "content": content}
        return _json(
            200,
            {
                "id": fid,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": filename,
                "purpose": parts["purpose"][1].decode(),
                "status": "processed",
            },
        )

    # --------------------------------------------------------- fine-tuning
    def _job_body(self, job: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": job["id"],
            "object": "fine_tuning.job",
            "created_at": job["created_at"],
            "model": job["model"],
            "status": job["status"],
            "training_file": job["training_file"],
            "validation_file": None,
            "fine_tuned_model": job.get("fine_tuned_model"),
            "finished_at": job.get("finished_at"),
            "error": job.get("error"),
            "hyperparameters": {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0},
            "method": job["method"],
            "organization_id": "org-test",
            "result_files": [],
            "seed": 42,
            "trained_tokens": job.get("trained_tokens"),
            "estimated_finish": None,
            "integrations": [],
        }

    def _create_job(self, body: dict[str, Any]) -> Response:
        if self.refuse_fine_tuning:
            return error(400, self.refuse_fine_tuning, "model_not_available")
        if body["training_file"] not in self.files:
            return error(400, f"File {body['training_file']} not found.", "invalid_file")
        jid = f"ftjob-{len(self.jobs) + 1}"
        job = {
            "id": jid,
            "created_at": int(time.time()),
            "model": body["model"],
            "status": "validating_files",
            "polls": 0,
            "training_file": body["training_file"],
            "method": body.get("method") or {"type": "supervised"},
            "events": [self._event(jid, 0, "info", "Validating training file")],
            "suffix": body.get("suffix"),
        }
        self.jobs[jid] = job
        return _json(200, self._job_body(job))

    @staticmethod
    def _event(jid: str, n: int, level: str, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "id": f"ftevent-{jid}-{n}",
            "object": "fine_tuning.job.event",
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "type": "metrics" if data else "message",
            "data": data or {},
        }

    def _retrieve(self, jid: str) -> Response:
        job = self.jobs.get(jid)
        if job is None:
            return error(404, f"No such job {jid}", "not_found")
        if job["status"] not in ("succeeded", "failed", "cancelled"):
            job["polls"] += 1
            status = self.job_plan[min(job["polls"], len(self.job_plan) - 1)]
            n = len(job["events"])
            if status == "running":
                step = 5 * job["polls"]
                job["events"].append(
                    self._event(
                        jid,
                        n,
                        "info",
                        f"Step {step}/20: training loss={2.0 / job['polls']:.3f}",
                        {"step": step, "train_loss": 2.0 / job["polls"], "total_steps": 20},
                    )
                )
            if status == "succeeded" and self.fail_job_with:
                status = "failed"
                job["error"] = {"code": "invalid_training_file", "message": self.fail_job_with, "param": "training_file"}
                job["events"].append(self._event(jid, n, "error", self.fail_job_with))
            elif status == "succeeded":
                job["fine_tuned_model"] = f"ft:{job['model']}:org-test::{jid[-4:]}"
                job["trained_tokens"] = 1234
                job["events"].append(self._event(jid, n, "info", "The job has successfully completed"))
            if status in ("succeeded", "failed"):
                job["finished_at"] = int(time.time())
            job["status"] = status
        return _json(200, self._job_body(job))

    def _events(self, jid: str) -> Response:
        job = self.jobs.get(jid)
        if job is None:
            return error(404, f"No such job {jid}", "not_found")
        return _json(200, {"object": "list", "data": list(reversed(job["events"])), "has_more": False})

    def _cancel(self, jid: str) -> Response:
        job = self.jobs.get(jid)
        if job is None:
            return error(404, f"No such job {jid}", "not_found")
        job["status"] = "cancelled"
        job["events"].append(self._event(jid, len(job["events"]), "info", "Fine-tuning job cancelled"))
        return _json(200, self._job_body(job))
