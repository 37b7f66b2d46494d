"""What the suite's `nginx` pods run here (the image map in conftest.py): nginx's welcome page on port 80
of the pod's own address, which is all `test_portforward_http` reads through a port-forward.

Inside the kubelet's sandbox the pod's hostname resolves to its IP (the pod's /etc/hosts), so the server
listens there and not on every address. Standard library only.
"""

import http.server
import socket

PAGE = b"<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n</body>\n</html>\n"


class Welcome(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the handler's protocol names it)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    address = socket.gethostbyname(socket.gethostname())
    http.server.ThreadingHTTPServer((address, 80), Welcome).serve_forever()
