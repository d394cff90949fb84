"""Serve a WSGI app on 127.0.0.1 on a free port in a daemon thread."""

import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """No access log lines on stderr (tests and benchmarks make thousands of requests)."""

    def log_request(self, *args, **kwargs):
        pass


class ServerThread:
    """``werkzeug.serving.make_server(threaded=True)`` run by ``serve_forever`` in a daemon thread."""

    def __init__(self, app, host="127.0.0.1", port=0, quiet=True):
        handler = QuietHandler if quiet else None
        self.server = make_server(host, port, app, threaded=True, request_handler=handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       name=f"emulator-{self.port}", daemon=True)

    def start(self):
        self.thread.start()
        return self.url

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(app, host="127.0.0.1", port=0):
    """Start ``app`` in a background thread; returns the ServerThread (``.url``, ``.stop()``)."""
    server = ServerThread(app, host, port)
    server.start()
    return server
