"""The web app of "Try it with Prometheus": a plain Flask app, served by gunicorn behind the
web sidecar. It knows nothing about Prometheus: the sidecar records its RED metrics, and the app
reports what only it can measure (GitHub API and webhook latency, GraphQL operations, DB query
time) as DogStatsD lines over UDP to the sidecar on 127.0.0.1:$STATSD_PORT, from every gunicorn
worker. No client library: one UDP datagram per metric.

Every answer carries X-Worker-Pid, so a client can tell that several workers served it.
"""
import os
import random
import socket
import time

from flask import Flask, abort, jsonify, request

STATSD = ("127.0.0.1", int(os.environ.get("STATSD_PORT", "9125")))
_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def statsd(name, value, kind, **tags):
    """Sends `name:value|kind|#k:v,...` (DogStatsD) to the sidecar; never fails the request."""
    line = f"{name}:{value}|{kind}"
    if tags:
        line += "|#" + ",".join(f"{k}:{v}" for k, v in tags.items())
    try:
        _sock.sendto(line.encode(), STATSD)
    except OSError:
        pass


app = Flask(__name__)


@app.after_request
def worker_pid(response):
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@app.get("/")
def index():
    return jsonify(ok=True)


@app.get("/users/<int:user_id>")
def user(user_id):
    started = time.perf_counter()
    time.sleep(random.uniform(0.001, 0.004))  # the "query"
    statsd("sqlalchemy_query_latency", round((time.perf_counter() - started) * 1000, 3), "ms", statement="SELECT")
    return jsonify(id=user_id, name=f"user {user_id}")


@app.get("/repos/<owner>/<repo>")
def repo(owner, repo):
    # A call to the GitHub API: its latency in milliseconds, by endpoint template and status.
    status = 404 if repo.startswith("missing") else 200
    started = time.perf_counter()
    time.sleep(random.uniform(0.002, 0.02))
    statsd("github_api_call_latency", round((time.perf_counter() - started) * 1000, 3), "ms",
           endpoint="/repos/{owner}/{repo}", status=status)
    if status == 404:
        abort(404)
    return jsonify(full_name=f"{owner}/{repo}")


@app.post("/webhook")
def webhook():
    # Webhook handling time in seconds, sent as a histogram (`h`), by GitHub event.
    started = time.perf_counter()
    event = request.headers.get("X-GitHub-Event", "ping")
    time.sleep(random.uniform(0.005, 0.05))
    statsd("github_webhook_latency", round(time.perf_counter() - started, 6), "h", event=event)
    return "", 204


@app.post("/graphql")
def graphql():
    body = request.get_json(silent=True) or {}
    operation = body.get("operationName") or "anonymous"
    statsd("graphql_requests", 1, "c", operation=operation)
    statsd("sqlalchemy_query_latency", round(random.uniform(0.5, 8), 3), "ms", statement="SELECT")
    return jsonify(data={"operation": operation})


@app.get("/boom")
def boom():
    raise RuntimeError("an unhandled error: Flask answers 500")
