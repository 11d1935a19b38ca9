"""Hold N idle TLS keep-alive connections to a server, each after one finished request.

    python3 idle.py PORT N h1|h2 CA_FILE PATH

Opens the connections one after another (TLS by ALPN http/1.1 or h2), makes one
GET of PATH on each and reads the whole answer, then prints "ready N" and keeps
them all open until stdin closes. The server thus holds N connections that have
served a request and are waiting for the next one.
"""
import resource
import socket
import ssl
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(index, value):
    """HPACK literal header field without indexing, name from the static table."""
    v = value.encode()
    assert index < 15 and len(v) < 127
    return bytes([index]) + bytes([len(v)]) + v


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return buf


def request_h1(sock, path):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("server closed the connection")
        head += chunk
    head, _, body = head.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n")[0].decode())
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length:"))
    recv_exact(sock, length - len(body))


def request_h2(sock, path):
    # :method GET (static 2), :scheme https (static 7), :path, :authority (static 4 and 1).
    block = b"\x82\x87" + literal(4, path) + literal(1, "127.0.0.1")
    sock.sendall(PREFACE + frame(4, 0, 0) + frame(1, 0x5, 1, block))  # END_STREAM|END_HEADERS
    while True:
        head = recv_exact(sock, 9)
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        recv_exact(sock, length)
        if kind == 4 and not flags & 1:
            sock.sendall(frame(4, 1, 0))  # acknowledge the server's SETTINGS
        if stream == 1 and kind in (0, 1) and flags & 1:
            return  # END_STREAM on our request
        if kind == 3 and stream == 1 or kind == 7:
            raise ConnectionError("stream reset or GOAWAY")


def main():
    port, n, proto, ca, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2" if proto == "h2" else "http/1.1"])
    held = []
    for _ in range(n):
        raw = socket.create_connection(("127.0.0.1", port))
        sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        if (sock.selected_alpn_protocol() or "http/1.1") != ("h2" if proto == "h2" else "http/1.1"):
            raise SystemExit(f"ALPN gave {sock.selected_alpn_protocol()}")
        (request_h2 if proto == "h2" else request_h1)(sock, path)
        held.append(sock)
    print(f"ready {len(held)} {held[0].version()} {held[0].cipher()[0]}", flush=True)
    sys.stdin.read()
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
