"""A git server for the component tests: git's "dumb" HTTP protocol on loopback, one Authorization header required.

    python git_http_server.py ROOT AUTHORIZATION

Serves the files under ROOT (bare repositories prepared with `git update-server-info`) to requests whose
Authorization header is exactly AUTHORIZATION, and answers 401 with a Basic challenge to any other, as a
private GitHub or CodeCommit repository does. Binds 127.0.0.1 on a port the system picks and prints it as
the first line of stdout. Runs in its own process, so the test process opens no socket (pytest-socket).
"""

from __future__ import annotations

import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(SimpleHTTPRequestHandler):
    authorization = ""

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == self.authorization:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="component-tests"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_GET(self) -> None:
        if self._authorized():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._authorized():
            super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:  # the request line only, never a header
        sys.stderr.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")


def main(root: str, authorization: str) -> None:
    handler = type("Handler", (_Handler,), {"authorization": authorization})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=root))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
