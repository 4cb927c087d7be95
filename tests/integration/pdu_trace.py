#!/usr/bin/env python3
"""Development aid, not part of the test run: a TCP relay that prints the
BHS of every iSCSI PDU passing through it (RFC 7143 section 11 layout), to
see what an initiator and the target really exchange.

    python3 tests/integration/pdu_trace.py LISTEN_PORT TARGET_PORT
    iscsi-test-cu ... iscsi://127.0.0.1:LISTEN_PORT/iqn.../0

Each line: direction (I>T initiator to target, T>I back), opcode, flags,
bytes 2-3, DataSegmentLength, ITT and the words at offsets 20..44.
"""
import socket
import struct
import sys
import threading


def pump(src, dst, tag):
    buf = b""
    try:
        while True:
            data = src.recv(1 << 20)
            if not data:
                break
            dst.sendall(data)
            buf += data
            while len(buf) >= 48:
                ahs = buf[4] * 4
                dsl = struct.unpack(">I", b"\0" + buf[5:8])[0]
                total = 48 + ahs + dsl + (4 - dsl % 4) % 4
                if len(buf) < total:
                    break
                h = buf[:48]
                words = struct.unpack(">IIIIIIII", h[16:48])
                print("%s op=0x%02x fl=0x%02x b2=%02x b3=%02x dsl=%d itt=%08x "
                      "w20=%08x w24=%08x w28=%08x w32=%08x w36=%08x w40=%08x w44=%08x" %
                      ((tag, h[0] & 0x3F, h[1], h[2], h[3], dsl) + words), flush=True)
                buf = buf[total:]
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(8)
    while True:
        ini, _ = srv.accept()
        tgt = socket.create_connection(("127.0.0.1", target_port))
        threading.Thread(target=pump, args=(ini, tgt, "I>T"), daemon=True).start()
        threading.Thread(target=pump, args=(tgt, ini, "T>I"), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
