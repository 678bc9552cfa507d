"""Sends a fixed number of requests through the web sidecar, from several threads so that several
gunicorn workers answer, spread evenly over two scrape intervals so that every route gets a rate
(a series that appears and never moves again has a rate of 0), and prints what it sent as one JSON
line: {"requests": N, "by_route": {...}, "by_status": {...}, "worker_pids": [...]}.

    python test/e2e/traffic.py http://127.0.0.1:8080 200 15s   # 200 requests over 2 x 15 s
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

THREADS = 8


def plan(n):
    """The i-th request: (route template, method, path, headers, body)."""
    out = []
    for i in range(n):
        k = i % 10
        if k in (0, 1, 2):
            out.append(("/users/:id", "GET", f"/users/{1000 + i}", {}, None))
        elif k in (3, 4):
            repo = "missing-repo" if k == 4 and i % 20 == 4 else f"repo{i % 3}"
            out.append(("/repos/:owner/:repo", "GET", f"/repos/acme/{repo}", {}, None))
        elif k == 5:
            out.append(("/webhook", "POST", "/webhook", {"X-GitHub-Event": "push" if (i // 10) % 2 else "issues"}, b"{}"))
        elif k in (6, 7):
            op = "viewer" if k == 6 else "repository"
            out.append(("/graphql", "POST", "/graphql", {"Content-Type": "application/json"},
                        json.dumps({"operationName": op, "query": "{ viewer { login } }"}).encode()))
        elif k == 8:
            out.append(("/", "GET", "/", {}, None))
        else:
            out.append(("/boom", "GET", "/boom", {}, None))
    return out


def seconds(text):
    """'15s', '1m', '500ms' or a plain number of seconds."""
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def main():
    base, n = sys.argv[1].rstrip("/"), int(sys.argv[2])
    spread = 2 * seconds(sys.argv[3]) if len(sys.argv) > 3 else 0
    todo = plan(n)
    start = time.monotonic()
    lock = threading.Lock()
    routes, statuses, pids, failures = Counter(), Counter(), set(), []

    def run(part):
        for i, (route, method, path, headers, body) in part:
            time.sleep(max(0.0, start + spread * i / n - time.monotonic()))  # the i-th request's turn
            req = urllib.request.Request(base + path, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    status, pid = r.status, r.headers.get("X-Worker-Pid")
                    r.read()
            except urllib.error.HTTPError as e:
                status, pid = e.code, e.headers.get("X-Worker-Pid")
                e.read()
            except Exception as e:  # noqa: BLE001 - reported below, the run fails
                with lock:
                    failures.append(f"{method} {path}: {e}")
                continue
            with lock:
                routes[route] += 1
                statuses[str(status)] += 1
                if pid:
                    pids.add(pid)

    threads = [threading.Thread(target=run, args=(list(enumerate(todo))[t::THREADS],)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"requests": sum(routes.values()), "by_route": routes, "by_status": statuses,
                      "worker_pids": sorted(pids), "failures": failures}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
