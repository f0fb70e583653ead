"""A local HTTP server that speaks the parts of the Hugging Face Hub API the server uses.

huggingface_hub is pointed at it (HF_ENDPOINT or an explicit endpoint), so the real client code
runs against real HTTP: model search and info, model and dataset file trees, file resolution with
the headers hf_hub_download relies on, gated repositories, and scripted faults (status codes with
Retry-After, delays, malformed bodies) to test retries and fallbacks. For launching training:
whoami with the token's role and fine-grained permissions, repository creation, upload_folder's
preupload and commit, and Jobs (create, inspect, logs as server-sent events, cancel, hardware),
with the Hub's 401/402/403 answers.
"""

import base64
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"

# GET /api/jobs/hardware, in the Hub's shape (huggingface_hub JobHardwareInfo): a CPU flavor and
# a100-large at 0.035 USD a minute (2.10 an hour, below the YAML's 2.50, so a test can tell).
JOBS_HARDWARE: list[dict[str, Any]] = [
    {
        "name": "cpu-basic",
        "prettyName": "CPU Basic",
        "cpu": "2 vCPU",
        "ram": "16 GB",
        "accelerator": None,
        "unitCostMicroUSD": 167,
        "unitCostUSD": 0.000167,
        "unitLabel": "minute",
    },
    {
        "name": "a100-large",
        "prettyName": "Nvidia A100 - large",
        "cpu": "12 vCPU",
        "ram": "142 GB",
        "accelerator": {
            "type": "gpu",
            "model": "A100",
            "quantity": "1",
            "vram": "80 GB",
            "manufacturer": "Nvidia",
        },
        "unitCostMicroUSD": 35000,
        "unitCostUSD": 0.035,
        "unitLabel": "minute",
    },
]


@dataclass
class Repo:
    """A model or dataset: its API info (Hub JSON field names) and its files."""

    id: str
    info: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    gated: bool = False
    owner: str | None = None  # a private repo: only this account's token sees it
    sha: str = COMMIT  # its head commit: each commit moves it

    def api_json(self) -> dict[str, Any]:
        siblings = [{"rfilename": name} for name in sorted(self.files)]
        return {
            "_id": hashlib.sha1(self.id.encode()).hexdigest()[:24],
            "id": self.id,
            "modelId": self.id,
            "sha": self.sha,
            "private": self.owner is not None,
            "gated": "manual" if self.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "lastModified": "2026-10-01T12:00:00.000Z",
            "createdAt": "2026-01-01T12:00:00.000Z",
            **self.info,
        }


@dataclass
class Fault:
    """A scripted answer for the next `times` requests whose path starts with `prefix`."""

    prefix: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"error": "scripted failure"}'
    delay_s: float = 0.0
    times: int = 1


@dataclass
class Account:
    """A token's owner and what the token may do, as whoami-v2 reports it.

    `role` is "read", "write" or "fineGrained" (then `permissions` are the scoped ones on the
    owner's namespace, such as "repo.write"). `jobs_status` is what POST /api/jobs answers
    instead of creating the Job: 402 (no PRO or credits), 403 (not allowed), None to accept.
    """

    name: str
    role: str = "write"
    permissions: list[str] = field(default_factory=list)
    jobs_status: int | None = None

    def whoami(self) -> dict[str, Any]:
        token: dict[str, Any] = {"displayName": "test token", "role": self.role}
        if self.role == "fineGrained":
            scope = {"entity": {"type": "user", "name": self.name}, "permissions": self.permissions}
            token["fineGrained"] = {"canReadGatedRepos": False, "global": [], "scoped": [scope]}
        return {
            "type": "user",
            "id": hashlib.sha1(self.name.encode()).hexdigest()[:24],
            "name": self.name,
            "fullname": self.name.title(),
            "isPro": self.jobs_status is None,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": token},
        }

    def can_write(self) -> bool:
        return self.role == "write" or "repo.write" in self.permissions


@dataclass
class Job:
    """A Job as the Hub keeps it; tests move it along with FakeHub.advance_job."""

    id: str
    owner: Account
    spec: dict[str, Any]
    created_at: str
    stage: str = "SCHEDULING"
    message: str | None = None
    logs: list[str] = field(default_factory=list)
    running_secs: int | None = None
    finished_at: str | None = None

    def api_json(self) -> dict[str, Any]:
        spec = {k: v for k, v in self.spec.items() if k != "secrets"}
        owner = {"id": self.owner.whoami()["id"], "name": self.owner.name, "type": "user"}
        return {
            **spec,
            "id": self.id,
            "createdAt": self.created_at,
            "startedAt": self.created_at if self.running_secs is not None else None,
            "finishedAt": self.finished_at,
            # the Hub never echoes secret values, only their names
            "secrets": dict.fromkeys(self.spec.get("secrets") or {}, "********"),
            "status": {"stage": self.stage, "message": self.message},
            "durations": {"runningSecs": self.running_secs, "totalSecs": self.running_secs},
            "owner": owner,
        }


_job_numbers = itertools.count(1)


class FakeHub:
    """State and behaviour behind the HTTP handler; tests configure it directly."""

    def __init__(self) -> None:
        self.models: dict[str, Repo] = {}
        self.datasets: dict[str, Repo] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.tokens: set[str] = set()
        self.jobs_hardware: list[dict[str, Any]] = list(JOBS_HARDWARE)
        self.accounts: dict[str, Account] = {}
        self.created_repos: dict[str, dict[str, Any]] = {}  # "<type>/<id>" -> create payload
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    # --- configuration ------------------------------------------------------------------

    def add_model(
        self,
        repo_id: str,
        *,
        config: dict[str, Any] | None = None,
        gated: bool = False,
        **info: Any,
    ) -> Repo:
        files = {"config.json": json.dumps(config).encode()} if config is not None else {}
        repo = Repo(repo_id, info=info, files=files, gated=gated)
        self.models[repo_id] = repo
        return repo

    def add_dataset(self, repo_id: str, files: dict[str, bytes], **info: Any) -> Repo:
        repo = Repo(repo_id, info=info, files=files)
        self.datasets[repo_id] = repo
        return repo

    def add_account(self, token: str, name: str, **account: Any) -> Account:
        """A token the Hub accepts, owned by `name` (Account's fields: role, permissions...)."""
        self.accounts[token] = Account(name, **account)
        self.tokens.add(token)
        return self.accounts[token]

    def advance_job(
        self,
        job_id: str,
        stage: str,
        *,
        logs: list[str] = (),  # type: ignore[assignment]
        running_secs: int | None = None,
        message: str | None = None,
    ) -> None:
        """Move a Job on: its stage, more log lines, how long it has run."""
        job = self.jobs[job_id]
        job.stage, job.message = stage, message
        job.logs.extend(logs)
        if running_secs is not None:
            job.running_secs = running_secs
        if stage in {"COMPLETED", "ERROR", "CANCELED"}:
            job.finished_at = _now()

    def fail(self, prefix: str, **fault: Any) -> None:
        with self._lock:
            self.faults.append(Fault(prefix, **fault))

    def requests_to(self, prefix: str) -> list[str]:
        return [path for _, path in self.requests if path.startswith(prefix)]

    # --- request handling --------------------------------------------------------------

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if path.startswith(fault.prefix) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def search(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        def first(name: str) -> str | None:
            return query.get(name, [None])[0]

        found = [repo.api_json() for repo in self.models.values()]
        if search := first("search"):
            found = [m for m in found if search.lower() in m["id"].lower()]
        if author := first("author"):
            found = [m for m in found if m["id"].split("/")[0] == author]
        if tag := first("pipeline_tag"):
            found = [m for m in found if m.get("pipeline_tag") == tag]
        for wanted in query.get("filter", []):
            found = [m for m in found if wanted in m["tags"] or m.get("library_name") == wanted]
        sort_key = first("sort")
        if sort_key in {"downloads", "likes", "trendingScore", "lastModified", "createdAt"}:
            found.sort(key=lambda m: m.get(sort_key) or 0, reverse=True)
        limit = int(first("limit") or 1000)
        return found[:limit]


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, *_: Any) -> None:  # keep test output clean
        return

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.hub.requests.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if fault := self.hub.take_fault(path):
            time.sleep(fault.delay_s)
            if fault.status:
                self._send(fault.status, fault.body, fault.headers, head=False)
                return
        account = self._account()
        if account is None:
            self._error(401, "Invalid credentials in Authorization header")
            return
        parts = path.strip("/").split("/")
        if path == "/api/repos/create":
            self._create_repo(account, json.loads(body))
        elif path == "/api/validate-yaml":  # upload_folder checks a README's metadata
            self._json({"errors": [], "warnings": []}, head=False)
        elif parts[:1] == ["api"] and len(parts) >= 6 and parts[4] in {"preupload", "commit"}:
            repo_type, repo_id = parts[1].removesuffix("s"), "/".join(parts[2:4])
            self._upload(account, parts[4], repo_type, repo_id, body)
        elif parts[:2] == ["api", "jobs"] and len(parts) == 3:
            self._create_job(account, parts[2], json.loads(body))
        elif parts[:2] == ["api", "jobs"] and len(parts) == 5 and parts[4] == "cancel":
            job = self._own_job(account, parts[2], parts[3])
            if job is not None:
                self.hub.advance_job(job.id, "CANCELED")
                self._json({}, head=False)
        else:
            self._not_found()

    # --- accounts, repositories, commits, Jobs ----------------------------------------------

    def _account(self) -> Account | None:
        return self.hub.accounts.get(self._token())

    def _error(self, status: int, message: str, head: bool = False) -> None:
        self._send(status, json.dumps({"error": message}).encode(), {}, head=head)

    def _create_repo(self, account: Account, payload: dict[str, Any]) -> None:
        namespace = payload.get("organization") or account.name
        if namespace != account.name or not account.can_write():
            self._error(403, "You don't have the rights to create a repo under this namespace")
            return
        repo_type = payload.get("type") or "model"
        repo_id = f"{namespace}/{payload['name']}"
        key = f"{repo_type}/{repo_id}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"http://{self.headers['Host']}/{prefix}{repo_id}"
        if key in self.hub.created_repos:
            self._send(
                409,
                json.dumps({"error": "You already created this repo", "url": url}).encode(),
                {},
                head=False,
            )
            return
        files: dict[str, bytes] = {}
        self.hub.created_repos[key] = {**payload, "files": files, "commits": []}
        # readable like any repo (info, files, downloads), by its owner alone when private
        private = payload.get("private") or payload.get("visibility") == "private"
        repo = Repo(repo_id, files=files, owner=account.name if private else None)
        (self.hub.models if repo_type == "model" else self.hub.datasets)[repo_id] = repo
        self._json(
            {"url": url, "name": repo_id, "id": hashlib.sha1(key.encode()).hexdigest()}, head=False
        )

    def _upload(
        self, account: Account, action: str, repo_type: str, repo_id: str, body: bytes
    ) -> None:
        repo = self.hub.created_repos.get(f"{repo_type}/{repo_id}")
        if repo is None:
            self._not_found()
            return
        if repo_id.split("/")[0] != account.name or not account.can_write():
            self._error(403, "You don't have the rights to write to this repo")
            return
        if action == "preupload":
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                for f in json.loads(body)["files"]
            ]
            self._json({"files": files}, head=False)
            return
        files, commit = repo["files"], {"summary": "", "paths": []}
        for line in body.splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                commit["summary"] = value.get("summary", "")
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                commit["paths"].append(value["path"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                for name in [n for n in files if n.startswith(folder)]:
                    del files[name]
        repo["commits"].append(commit)
        oid = hashlib.sha1(body).hexdigest()
        repos = self.hub.models if repo_type == "model" else self.hub.datasets
        repos[repo_id].sha = oid
        self._json(
            {
                "commitUrl": f"http://{self.headers['Host']}/{repo_id}/commit/{oid}",
                "commitOid": oid,
                "success": True,
            },
            head=False,
        )

    def _create_job(self, account: Account, namespace: str, spec: dict[str, Any]) -> None:
        if namespace != account.name:
            self._error(403, f"You don't have permission to run jobs in the namespace {namespace}")
            return
        if account.jobs_status == 402:
            self._error(
                402,
                "Jobs are available to PRO users and Team or Enterprise "
                "organizations with a payment method.",
            )
            return
        if account.jobs_status is not None or not account.can_write():
            self._error(403, "This token does not have permission to start jobs.")
            return
        job = Job(f"{next(_job_numbers):024x}", account, spec, _now())
        self.hub.jobs[job.id] = job
        self._json(job.api_json(), head=False)

    def _own_job(self, account: Account, namespace: str, job_id: str) -> Job | None:
        job = self.hub.jobs.get(job_id)
        if job is None or namespace != account.name or job.owner is not account:
            self._error(404, "Job not found")
            return None
        return job

    def _jobs_api(self, parts: list[str], query: dict[str, list[str]], head: bool) -> None:
        account = self._account()
        if account is None:
            self._error(401, "Invalid credentials in Authorization header", head)
            return
        job = self._own_job(account, parts[2], parts[3])
        if job is None:
            return
        if len(parts) == 4:
            self._json(job.api_json(), head=head)
            return
        lines = job.logs
        if tail := query.get("tail"):
            lines = lines[-int(tail[0]) :]
        events = "".join(
            f"data: {json.dumps({'timestamp': job.created_at, 'data': line})}\n\n" for line in lines
        )
        self._send(200, events.encode(), {}, head=head, content_type="text/event-stream")

    def _serve(self, *, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.hub.requests.append((self.command, self.path))
        if fault := self.hub.take_fault(path):
            time.sleep(fault.delay_s)
            if fault.status:
                self._send(fault.status, fault.body, fault.headers, head=head)
                return
        query = parse_qs(url.query)
        if path == "/api/models":
            self._json(self.hub.search(query), head=head)
        elif path == "/api/jobs/hardware":
            self._json(self.hub.jobs_hardware, head=head)
        elif path == "/api/whoami-v2":
            account = self._account()
            if account is None:
                self._error(401, "Invalid credentials in Authorization header", head)
            else:
                self._json(account.whoami(), head=head)
        elif path.startswith("/api/jobs/") and len(path.strip("/").split("/")) in {4, 5}:
            self._jobs_api(path.strip("/").split("/"), query, head)
        elif path.startswith("/api/models/") and "/tree/" in path:
            self._tree(self.hub.models, path.removeprefix("/api/models/"), head)
        elif path.startswith("/api/models/"):
            self._repo_info(self.hub.models, path.removeprefix("/api/models/"), head)
        elif path.startswith("/api/datasets/"):
            self._dataset_api(path.removeprefix("/api/datasets/"), head)
        elif path.startswith("/datasets/"):
            self._resolve(self.hub.datasets, path.removeprefix("/datasets/"), head)
        else:
            self._resolve(self.hub.models, path.lstrip("/"), head)

    def _repo_info(self, repos: dict[str, Repo], rest: str, head: bool) -> None:
        repo_id = rest.split("/revision/")[0]
        repo = self._visible(repos, repo_id)
        if repo is None:
            self._not_found()
            return
        self._json(repo.api_json(), head=head)

    def _visible(self, repos: dict[str, Repo], repo_id: str) -> Repo | None:
        """The repo, unless it is private and the token is not its owner's (the Hub answers
        404 then, as if there were no such repo)."""
        repo = repos.get(repo_id)
        if repo is None or repo.owner is None:
            return repo
        account = self._account()
        return repo if account is not None and account.name == repo.owner else None

    def _dataset_api(self, rest: str, head: bool) -> None:
        if "/tree/" in rest:
            self._tree(self.hub.datasets, rest, head)
            return
        self._repo_info(self.hub.datasets, rest, head)

    def _tree(self, repos: dict[str, Repo], rest: str, head: bool) -> None:
        """<repo>/tree/<revision>[/<folder>]: the folder's files and subfolders (every file
        under it with ?recursive=true); 404 EntryNotFound for a folder the repo lacks."""
        repo_id, _, where = rest.partition("/tree/")
        repo = self._visible(repos, repo_id)
        if repo is None:
            self._not_found()
            return
        _, _, folder = where.partition("/")
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        recursive = "recursive=true" in urlsplit(self.path).query.lower()
        inside = {name: data for name, data in repo.files.items() if name.startswith(prefix)}
        if prefix and not inside:
            message = f'{{"error": "{folder} does not exist on the revision"}}'.encode()
            self._send(404, message, {"X-Error-Code": "EntryNotFound"}, head=head)
            return
        tree: list[dict[str, Any]] = []
        folders: set[str] = set()
        for name, data in sorted(inside.items()):
            below = name[len(prefix) :]
            if "/" in below and not recursive:
                folders.add(prefix + below.split("/")[0])
                continue
            tree.append({"type": "file", "path": name, "size": len(data), "oid": _oid(data)})
        tree += [
            {"type": "directory", "path": name, "oid": _oid(name.encode())}
            for name in sorted(folders)
        ]
        self._json(tree, head=head)

    def _resolve(self, repos: dict[str, Repo], rest: str, head: bool) -> None:
        repo_part, sep, file_part = rest.partition("/resolve/")
        repo = self._visible(repos, repo_part) if sep else None
        if repo is None:
            self._not_found()
            return
        _, _, filename = file_part.partition("/")
        if repo.gated and self._token() not in self.hub.tokens:
            message = b'{"error": "Access to this model is restricted."}'
            self._send(401, message, {"X-Error-Code": "GatedRepo"}, head=head)
            return
        data = repo.files.get(filename)
        if data is None:
            self._send(
                404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"}, head=head
            )
            return
        headers = {"ETag": f'"{_oid(data)}"', "X-Repo-Commit": repo.sha}
        self._send(200, data, headers, head=head, content_type="application/octet-stream")

    def _token(self) -> str:
        return self.headers.get("Authorization", "").removeprefix("Bearer ").strip()

    def _not_found(self) -> None:
        body = b'{"error": "Repository not found"}'
        self._send(404, body, {"X-Error-Code": "RepoNotFound"}, head=self.command == "HEAD")

    def _json(self, value: Any, *, head: bool) -> None:
        self._send(200, json.dumps(value).encode(), {}, head=head)

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str],
        *,
        head: bool,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _oid(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@contextmanager
def serve_fake_hub() -> Iterator[tuple[FakeHub, str]]:
    """Run a FakeHub on a free loopback port; yields the hub and its base URL."""
    hub = FakeHub()
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hub, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
