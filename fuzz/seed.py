"""Writes the fuzzers' starting corpus into fuzz/corpus/: the Chat2Desk fixtures as webhook
bodies, and spool logs in the gateway's record format (crates/gateway/src/spool/record.rs):
whole, damaged in the middle, torn at the end, and behind garbage. libFuzzer mutates from
there; a log it could never build by chance (a CRC32C over a record) is given to it whole."""

import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "chat2desk"


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as the crc crate's CRC_32_ISCSI computes it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def record(subject: str, msg_id: str, traceparent: str, payload: bytes) -> bytes:
    """[length u32 LE][crc32c u32 LE][subject, msg id, traceparent as u16 LE + bytes][payload]"""
    body = b"".join(
        struct.pack("<H", len(field.encode())) + field.encode()
        for field in (subject, msg_id, traceparent)
    ) + payload
    return struct.pack("<II", len(body), crc32c(body)) + body


def main() -> None:
    bodies = HERE / "corpus" / "parse_delivery"
    bodies.mkdir(parents=True, exist_ok=True)
    for fixture in sorted(FIXTURES.glob("*.json")):
        (bodies / fixture.name).write_bytes(fixture.read_bytes())

    logs = HERE / "corpus" / "spool_log"
    logs.mkdir(parents=True, exist_ok=True)
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    records = [
        record(f"chat2desk.events.acme.{hook}", f"{n:032x}", trace, bytes([n]) * (40 * n))
        for n, hook in enumerate(["inbox", "outbox", "new_client"], start=1)
    ]
    whole = b"".join(records)
    damaged = bytearray(whole)
    damaged[len(records[0]) + len(records[1]) // 2] ^= 0xFF
    seeds = {
        "whole": whole,
        "damaged-in-the-middle": bytes(damaged),
        "torn-tail": whole + records[0][: len(records[0]) // 2],
        "garbage-first": b"\xff" * 12 + whole,
        "dead-letter": record("chat2desk.dlq.acme", "ab" * 16, "", b"not json"),
    }
    for name, log in seeds.items():
        (logs / name).write_bytes(log)
    print(f"fuzz corpus: {len(list(bodies.iterdir()))} bodies, {len(seeds)} spool logs in {HERE / 'corpus'}")


if __name__ == "__main__":
    main()
