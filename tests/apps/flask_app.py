"""A Flask app for tests/functional/test_frameworks.py."""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

from flask import Flask, Response, jsonify, redirect, request

app = Flask(__name__)


@app.post("/form")
def form() -> Any:
    return jsonify(name=request.form["name"])


@app.post("/upload")
def upload() -> Any:
    data = request.files["file"].read()
    return jsonify(size=len(data), sha256=hashlib.sha256(data).hexdigest())


@app.get("/stream")
def stream() -> Response:
    def parts() -> Iterator[str]:
        for n in range(5):
            yield f"part {n}\n"

    return Response(parts(), mimetype="text/plain")


@app.get("/redirect")
def to_json() -> Any:
    response = redirect("/json")
    response.set_cookie("flavour", "oatmeal")
    return response


@app.get("/json")
def json_view() -> Any:
    return jsonify(ok=True, cookie=request.cookies.get("flavour"))


@app.get("/error")
def error() -> Any:
    raise RuntimeError("flask view failed")
