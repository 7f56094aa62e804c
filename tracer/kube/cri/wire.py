"""The protobuf wire format, as far as the CRI messages we exchange need it (proto3: varint = 0,
length-delimited = 2). Field numbers come from k8s.io/cri-api pkg/apis/runtime/v1/api.proto."""

from __future__ import annotations


def encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 go out as ten bytes, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_varint_field(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


def encode_bytes(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def encode_string(number: int, text: str) -> bytes:
    return encode_bytes(number, text.encode())


encode_message = encode_bytes


def encode_map(number: int, entries: dict[str, str]) -> bytes:
    """map<string, string>: one length-delimited {key = 1, value = 2} entry per item."""
    return b"".join(encode_message(number, encode_string(1, key) + encode_string(2, value))
                    for key, value in sorted(entries.items()))


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


class Fields:
    """A decoded message: field number -> list of raw values (int or bytes), in order."""

    def __init__(self, data: bytes):
        self.values: dict[int, list] = {}
        pos = 0
        while pos < len(data):
            key, pos = decode_varint(data, pos)
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                value, pos = decode_varint(data, pos)
            elif wire_type == 2:
                length, pos = decode_varint(data, pos)
                value, pos = data[pos:pos + length], pos + length
                if pos > len(data):
                    raise ValueError("truncated length-delimited field")
            elif wire_type in (1, 5):  # fixed64 / fixed32: none we read, skip them
                size = 8 if wire_type == 1 else 4
                value, pos = data[pos:pos + size], pos + size
            else:
                raise ValueError(f"unsupported wire type {wire_type}")
            self.values.setdefault(number, []).append(value)

    def varint(self, number: int) -> int:
        values = self.values.get(number)
        return values[-1] if values else 0

    def string(self, number: int) -> str:
        values = self.values.get(number)
        return values[-1].decode() if values else ""

    def message(self, number: int) -> Fields | None:
        values = self.values.get(number)
        return Fields(values[-1]) if values else None

    def messages(self, number: int) -> list[Fields]:
        return [Fields(value) for value in self.values.get(number, [])]

    def map(self, number: int) -> dict[str, str]:
        return {entry.string(1): entry.string(2) for entry in self.messages(number)}
