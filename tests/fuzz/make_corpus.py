#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz harnesses in tests/fuzz/ (their formats are described at the
top of each harness): tests/fuzz/corpus/<harness>/<name>. Run from anywhere; it rewrites them."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# store_protocol.h
HANDSHAKE, SET, GET, ADD, COMPARE_SET, CHECK, WAIT, REMOVE = 1, 2, 3, 4, 5, 6, 7, 8
MAGIC = b"tessera-store-2"
INT64_MAX = 2**63 - 1


def string(b):
    return struct.pack("<I", len(b)) + b


def strings(items):
    return struct.pack("<I", len(items)) + b"".join(string(i) for i in items)


def frame(body):
    return struct.pack("<I", len(body)) + body


def i64(v):
    return struct.pack("<q", v)


def steps(data, to_b=False, tick=False):
    """The harness's steps carrying `data` to session A (or B): at most 64 bytes each."""
    out = b""
    for at in range(0, len(data), 64):
        piece = data[at:at + 64]
        control = (len(piece) - 1) << 2 | (1 if to_b else 0) | (2 if tick and at == 0 else 0)
        out += bytes([control]) + piece
    return out


def store_seeds():
    raw = 0      # mode: session A unauthenticated
    auth = 1     # session A authenticated by the harness
    both = 3     # sessions A and B, both authenticated
    requests = b"".join([
        frame(bytes([SET]) + string(b"job/key") + string(b"value")),
        frame(bytes([GET]) + string(b"job/key") + i64(1000)),
        frame(bytes([GET]) + string(b"absent") + i64(-1)),
        frame(bytes([GET]) + string(b"absent") + i64(0)),
        frame(bytes([ADD]) + string(b"counter") + i64(5)),
        frame(bytes([ADD]) + string(b"job/key") + i64(1)),
        frame(bytes([COMPARE_SET]) + string(b"job/key") + string(b"value") + string(b"new")),
        frame(bytes([CHECK]) + strings([b"job/key", b"counter"])),
        frame(bytes([WAIT]) + strings([b"job/key"]) + i64(10)),
        frame(bytes([REMOVE]) + string(b"job/key")),
        frame(bytes([WAIT]) + strings([b"job/key", b"never"]) + i64(INT64_MAX)),
    ])
    return {
        "handshake_v1": bytes([raw]) + steps(frame(bytes([HANDSHAKE]) + string(b"tessera-store-1")
                                                  + string(b"a-token-in-clear-text"))),
        "handshake_wrong_proof": bytes([raw]) + steps(frame(
            bytes([HANDSHAKE]) + string(MAGIC) + string(b"n" * 32) + string(b"p" * 32))),
        "http": bytes([raw]) + steps(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "oversized_handshake": bytes([raw]) + steps(b"\xff\xff\xff\x0f"),
        "requests": bytes([auth]) + steps(requests),
        "requests_with_time": bytes([auth]) + steps(requests[:40], tick=True) + steps(
            requests[40:], tick=True),
        "oversized_frame": bytes([auth]) + steps(b"\xff\xff\xff\xff"),
        "unknown_command": bytes([auth]) + steps(frame(bytes([200]))),
        "truncated_set": bytes([auth]) + steps(frame(bytes([SET]) + struct.pack("<I", 99))),
        "wait_then_set": bytes([both]) + steps(frame(bytes([GET]) + string(b"k") + i64(5000)))
        + steps(frame(bytes([SET]) + string(b"k") + string(b"v")), to_b=True),
    }


def header(tag, length, padding=0):
    return struct.pack("<IIQ", tag, padding, length)


def ring_seed(head, tail, exponent, ring):
    return struct.pack("<QQ", head, tail) + bytes([exponent]) + ring


def shm_seeds():
    capacity_64 = 2  # 16 << 2
    wrapped = bytearray(64)
    message = header(3, 24) + b"x" * 24  # 40 bytes from offset 56, wrapping at 64
    for i, b in enumerate(message):
        wrapped[(56 + i) % 64] = b
    return {
        "empty_message": ring_seed(16, 0, 0, header(7, 0)),
        "two_messages": ring_seed(48, 0, capacity_64, header(1, 16) + b"y" * 16 + header(2, 0)),
        "wrapped": ring_seed(56 + 40, 56, capacity_64, bytes(wrapped)),
        "partial_message": ring_seed(24, 0, capacity_64, header(5, 1000) + b"z" * 8),
        "length_2_60": ring_seed(16, 0, 0, header(9, 2**60)),
        "head_past_capacity": ring_seed(65, 0, capacity_64, header(1, 0)),
        "tail_past_head": ring_seed(0, 5, capacity_64, header(1, 0)),
        "near_the_top": ring_seed(2**64 - 1, 2**64 - 17, 0, header(4, 0)),
    }


# parallel/ps/message.h
PS_PULL_DENSE, PS_PUSH_DENSE, PS_PULL_SPARSE, PS_PUSH_SPARSE, PS_HEARTBEAT, PS_BYE = 5, 6, 7, 8, 12, 13
PS_SHARE_MEMORY, PS_SEGMENT, PS_SHARED_BIT = 16, 17, 0x8000
BSP, ASP, SSP = 0, 1, 2
REPLY_IN_SEGMENT = 4


def ps_message(kind, body, sender=0, table=1, clock=0):
    head = struct.pack("<IHHIIqQQ", 0x53505354, 1, kind, sender, table, clock, 7, len(body))
    return head + body


def ps_floats(values):
    return struct.pack("<%df" % len(values), *values)


def ps_seeds():
    push_dense = struct.pack("<fIqq", 0.1, 0, 0, 32) + ps_floats([0.5] * 32)
    pull_dense = struct.pack("<qq", 0, 32)
    keys = struct.pack("<QQQ", 5, 2**40, 5)
    pull_sparse = struct.pack("<Q", 3) + keys
    push_sparse = struct.pack("<fIQ", 0.1, 0, 3) + keys + ps_floats([1.0] * 12)
    return {
        "asp_dense": bytes([ASP]) + ps_message(PS_PULL_DENSE, pull_dense)
        + ps_message(PS_PUSH_DENSE, push_dense) + ps_message(PS_PULL_DENSE, pull_dense, clock=1),
        "bsp_round": bytes([BSP]) + ps_message(PS_PUSH_DENSE, push_dense)
        + ps_message(PS_PUSH_DENSE, push_dense, sender=1) + ps_message(PS_PULL_DENSE, pull_dense, clock=1),
        "ssp_sparse": bytes([SSP]) + ps_message(PS_PULL_SPARSE, pull_sparse, table=2)
        + ps_message(PS_PUSH_SPARSE, push_sparse, table=2)
        + ps_message(PS_PULL_SPARSE, pull_sparse, table=2, clock=3),
        "adagrad_sparse": bytes([ASP]) + ps_message(PS_PUSH_SPARSE, struct.pack("<fIQ", 0.1, 0, 3) + keys
                                                   + ps_floats([1.0] * 9), table=4),
        "heartbeat_bye": bytes([ASP]) + ps_message(PS_HEARTBEAT, b"") + ps_message(PS_BYE, b""),
        "wrong_table": bytes([ASP]) + ps_message(PS_PULL_SPARSE, pull_sparse, table=1),
        "replies_in_segment": bytes([ASP | REPLY_IN_SEGMENT]) + ps_message(PS_PULL_DENSE, pull_dense)
        + ps_message(PS_PULL_SPARSE, pull_sparse, table=2),
        "share_memory": bytes([ASP]) + ps_message(PS_SHARE_MEMORY, struct.pack("<Q", 4096))
        + ps_message(PS_SEGMENT, struct.pack("<IiQ", 1, 3, 4096) + bytes(16), clock=64)
        + ps_message(PS_PULL_DENSE | PS_SHARED_BIT, pull_dense),
    }


def state_entry(name, shape):
    """One entry of Module::save_state: the name, then write_tensor's float32 tensor."""
    count = 1
    for d in shape:
        count *= d
    tensor = struct.pack("<II", 0, len(shape)) + b"".join(struct.pack("<q", d) for d in shape)
    tensor += struct.pack("<%df" % count, *[0.5 * i for i in range(count)])
    return struct.pack("<Q", len(name)) + name + tensor


def pipeline_seeds():
    """pipeline_fuzz: a header, and states of the harness's stage (layers 4 and 5) and others."""
    header = struct.pack("<8q", 0, 3, 2, 5, 16, 0, 0, 0)
    stage = [(b"4.weight", [2, 3]), (b"4.bias", [2]), (b"5.weight", [2, 2]), (b"5.bias", [2])]
    whole = stage + [(b"0.tokens", [3, 2])]
    state = struct.pack("<Q", len(whole)) + b"".join(state_entry(n, s) for n, s in whole)
    first = struct.pack("<Q", 2) + b"".join(state_entry(n, s) for n, s in stage[:2])
    second = struct.pack("<Q", 2) + b"".join(state_entry(n, s) for n, s in stage[2:])
    return {
        "header": b"\x00" + header,
        "whole_state": b"\x01" + state,
        "two_stages": b"\x02" + first + second,
    }


def write(harness, seeds):
    folder = os.path.join(HERE, "corpus", harness)
    os.makedirs(folder, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("store_frame", store_seeds())
    write("shm_message_header", shm_seeds())
    write("ps_message", ps_seeds())
    write("pipeline", pipeline_seeds())
