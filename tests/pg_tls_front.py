"""A TLS front for a Postgres built without SSL (pgserver's), for the tests.

It speaks Postgres's own TLS negotiation: a client's SSLRequest is answered 'S', the
connection is wrapped in TLS with the given certificate, and the decrypted bytes are
relayed to the plain Postgres behind. A client that does not ask for TLS is refused, so
whatever connects through it used TLS.

    python3 tests/pg_tls_front.py LISTEN_PORT PG_PORT CERT KEY
Prints "ready" once listening.
"""

import socket
import ssl
import struct
import sys
import threading

SSL_REQUEST = 80877103


def relay(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, context, pg_port):
    try:
        head = client.recv(8, socket.MSG_WAITALL)
        if len(head) != 8 or struct.unpack("!II", head) != (8, SSL_REQUEST):
            client.close()
            return
        client.sendall(b"S")
        secure = context.wrap_socket(client, server_side=True)
    except (OSError, ssl.SSLError):
        client.close()
        return
    backend = socket.create_connection(("127.0.0.1", pg_port))
    threading.Thread(target=relay, args=(secure, backend), daemon=True).start()
    relay(backend, secure)


def main():
    listen_port, pg_port, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(64)
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=serve, args=(client, context, pg_port), daemon=True).start()


if __name__ == "__main__":
    main()
