"""The application behind the sidecar in the adversarial suite (test/adversarial, issue 9).

A plain Flask app under gunicorn with its own `/debug/` tree, as real apps have (Flask-DebugToolbar,
profilers, admin pages): if any spelling of `/debug/` reaches it through the sidecar, its answer
carries DEBUG_MARKER and the request is in the log, so a leak is unmistakable.

Every request the app receives is appended to ADV_LOG as one JSON line: what gunicorn read
(RAW_URI), what WSGI routed on (PATH_INFO), the endpoint Flask chose, the Upgrade and Host headers,
and the test's X-Attack-Id header, so a test can tell exactly which of its requests got through.

`/proxyfix/1` and `/proxyfix/2` answer what the app concludes from the forwarding headers through
werkzeug's ProxyFix (issue 18): client address, scheme, host, script root, an external URL.
"""
import json
import os

from flask import Flask, Response, jsonify, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

DEBUG_MARKER = "APP-DEBUG-TREE-REACHED"
LOG = os.environ["ADV_LOG"]

app = Flask(__name__)

# `/proxyfix/<n>` is served through werkzeug's ProxyFix with x_for=n (1: the sidecar alone in front,
# 2: an ingress and the sidecar) and x_proto, x_host, x_prefix = 1, as docs/endpoints.md tells apps to
# configure it; every other path sees the WSGI environ gunicorn made, untouched.
_plain_wsgi = app.wsgi_app
_proxy_fixed = {n: ProxyFix(_plain_wsgi, x_for=n, x_proto=1, x_host=1, x_prefix=1) for n in (1, 2)}


def _wsgi(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/proxyfix/"):
        n = path[len("/proxyfix/"):]
        if n in ("1", "2"):
            return _proxy_fixed[int(n)](environ, start_response)
    return _plain_wsgi(environ, start_response)


app.wsgi_app = _wsgi


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


@app.route("/proxyfix/<int:n>")
def proxyfix(n):
    # What the app believes after ProxyFix, and every header it received (as gunicorn passed them).
    return jsonify(
        remote_addr=request.remote_addr,
        scheme=request.scheme,
        host=request.host,
        script_root=request.script_root,
        url=url_for("proxyfix", n=n, _external=True),
        headers=[[k, v] for k, v in request.headers.items()],
    )


# Slow-client attacks (test/adversarial/slow-clients.test.ts): a 5 MB answer a sync worker must
# write out, and an upload endpoint that reads the whole body.
BIG = b"x" * (5 * 1000 * 1000)


@app.route("/export")
def export():
    return Response(BIG, mimetype="application/octet-stream")


@app.route("/upload", methods=["POST"])
def upload():
    return f"{len(request.get_data())} bytes\n"


# Route templates from the app's own description (issue 22): a small API under /v1 with literal,
# parameter and mixed segments, and its OpenAPI document at /openapi.json (servers' base path /v1),
# which the sidecar reads with ROUTE_OPENAPI_URL=/openapi.json (test/proxy/openapi-flask.test.ts).
@app.route("/v1/users/me")
def users_me():
    return "me\n"


@app.route("/v1/users/<name>")
def users_one(name):
    return f"user {name}\n"


@app.route("/v1/users/<name>/repos/<repo>")
def users_repo(name, repo):
    return f"repo {name}/{repo}\n"


@app.route("/v1/tags/<tag>")
def tags_one(tag):
    return f"tag {tag}\n"


@app.route("/v1/files/<name>.<ext>")
def files_one(name, ext):
    return f"file {name}.{ext}\n"


OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "adversarial test app", "version": "1"},
    "servers": [{"url": "/v1"}],
    "paths": {
        "/users/me": {"get": {"operationId": "getMe", "responses": {"200": {"description": "me"}}}},
        "/users/{userName}": {
            "get": {"operationId": "getUser", "responses": {"200": {"description": "a user"}}},
            "parameters": [{"name": "userName", "in": "path", "required": True, "schema": {"type": "string"}}],
        },
        "/users/{userName}/repos/{repoName}": {"get": {"operationId": "getRepo", "responses": {"200": {"description": "a repo"}}}},
        "/tags/{tag}": {"get": {"operationId": "getTag", "responses": {"200": {"description": "a tag"}}}},
        "/files/{name}.{ext}": {"get": {"operationId": "getFile", "responses": {"200": {"description": "a file"}}}},
    },
}


@app.route("/openapi.json")
def openapi():
    return jsonify(OPENAPI)
