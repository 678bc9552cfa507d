"""The application behind the sidecar in the adversarial suite (test/adversarial, issue 9).

A plain Flask app under gunicorn with its own `/debug/` tree, as real apps have (Flask-DebugToolbar,
profilers, admin pages): if any spelling of `/debug/` reaches it through the sidecar, its answer
carries DEBUG_MARKER and the request is in the log, so a leak is unmistakable.

Every request the app receives is appended to ADV_LOG as one JSON line: what gunicorn read
(RAW_URI), what WSGI routed on (PATH_INFO), the endpoint Flask chose, the Upgrade and Host headers,
and the test's X-Attack-Id header, so a test can tell exactly which of its requests got through.
"""
import json
import os

from flask import Flask, Response, request

DEBUG_MARKER = "APP-DEBUG-TREE-REACHED"
LOG = os.environ["ADV_LOG"]

app = Flask(__name__)


@app.before_request
def record():
    env = request.environ
    entry = {
        "raw_uri": env.get("RAW_URI"),
        "path_info": env.get("PATH_INFO"),
        "method": request.method,
        "endpoint": request.endpoint,
        "upgrade": request.headers.get("Upgrade"),
        "hosts": request.headers.getlist("Host"),
        "attack_id": request.headers.get("X-Attack-Id"),
    }
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


@app.route("/debug", defaults={"p": ""}, methods=["GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE"])
@app.route("/debug/", defaults={"p": ""}, methods=["GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE"])
@app.route("/debug/<path:p>", methods=["GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE"])
def debug(p):
    return Response(f"{DEBUG_MARKER} p={p!r}\n", mimetype="text/plain")


@app.route("/debug", defaults={"p": ""}, websocket=True)
@app.route("/debug/", defaults={"p": ""}, websocket=True)
@app.route("/debug/<path:p>", websocket=True)
def debug_console(p):
    # An app with a WebSocket console on its debug tree: it accepts the upgrade.
    return Response(DEBUG_MARKER, status=101, headers={"Upgrade": request.headers["Upgrade"], "Connection": "Upgrade"})


@app.route("/hello")
def hello():
    return "hello\n"


@app.route("/api/reports/summary")
def summary():
    return "summary\n"


@app.route("/reset-password/<token>")
def reset_password(token):
    return "check your mail\n"


@app.route("/users/<int:uid>")
def user(uid):
    return f"user {uid}\n"


# Slow-client attacks (test/adversarial/slow-clients.test.ts): a 5 MB answer a sync worker must
# write out, and an upload endpoint that reads the whole body.
BIG = b"x" * (5 * 1000 * 1000)


@app.route("/export")
def export():
    return Response(BIG, mimetype="application/octet-stream")


@app.route("/upload", methods=["POST"])
def upload():
    return f"{len(request.get_data())} bytes\n"
