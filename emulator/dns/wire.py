"""DNS wire-format pieces the server needs around dnslib: packed answers ready for any query ID,
and the replies for queries that cannot be answered (FORMERR, NOTIMP, REFUSED, SERVFAIL).

A `Packed` answer is what the hot path sends: for a given question only the ID, the RD bit, EDNS or
not, and whether it fits the client's UDP size vary, so each variant is prepared once and a reply is
`id + head + question-as-the-client-wrote-it + tail`. Compression pointers point at the question,
whose length does not change with letter case, so they stay right.
"""

from __future__ import annotations

from typing import NamedTuple, cast

from dnslib import DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from emulator.dns.records import Answer

EDNS_PAYLOAD = 1232  # what we advertise (the DNS flag day 2020 value)
OPT_RR = b"\x00\x00\x29" + EDNS_PAYLOAD.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"
MAX_MESSAGE = 65535  # a TCP message cannot be longer
UDP_PLAIN = 512  # what a client without EDNS can take
# The largest UDP answer sent whatever the client's EDNS buffer says (DNS Flag Day 2020's 1232 bytes):
# bigger answers go over TCP, so a spoofed query can never be amplified past this.
UDP_MAX = 1232
ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0


class Packed(NamedTuple):
    """Flat, so the hot path reaches every part with one index: variant v = rd | edns << 1.

    To a type checker a computed index reads `bytes | int`: the heads (0-7, all bytes) are read with
    `cast(bytes, ...)`, tails and sizes by name or constant index (`size1 if edns else size0`), exact.
    """

    head0: bytes  # flags + counts, per variant v (indexes 0-3)
    head1: bytes
    head2: bytes
    head3: bytes
    tc0: bytes  # the same, truncated: TC set, no records (indexes 4-7)
    tc1: bytes
    tc2: bytes
    tc3: bytes
    tail0: bytes  # the sections after the question, without / with our OPT record (indexes 8-9)
    tail1: bytes
    size0: int  # the whole message's length, without / with EDNS (indexes 10-11)
    size1: int
    question: bytes  # the question as packed (lower case)


HEAD, TC_HEAD, TAIL, SIZE = 0, 4, 8, 10


def pack_answer(labels: tuple[bytes, ...], qtype: int, answer: Answer, recursion_available: bool) -> Packed:
    """Pack an answer for the lower-case question once, in every variant a query may need."""
    record = DNSRecord(
        # rd=0: dnslib sets RD unless told; each variant copies the query's RD bit in (packed_variants)
        DNSHeader(id=0, qr=1, aa=1, rd=0, ra=int(recursion_available), rcode=answer.rcode),
        q=DNSQuestion(DNSLabel(list(labels)), qtype),
    )
    record.rr = answer.answer
    record.auth = answer.authority
    record.ar = answer.additional
    message = bytes(record.pack())
    while len(message) + len(OPT_RR) > MAX_MESSAGE and record.rr:
        # Too many records even for TCP (a headless service with thousands of endpoints): keep what fits.
        del record.rr[len(record.rr) // 2 :]
        record.ar = []
        message = bytes(record.pack())
    return packed_variants(message)


def question_end(message: bytes) -> int:
    """Where the (uncompressed) question that starts at byte 12 ends."""
    i = 12
    while message[i]:
        i += 1 + message[i]
    return i + 5


def packed_variants(message: bytes) -> Packed:
    end = question_end(message)
    question = message[12:end]
    flags, counts = message[2:4], message[4:12]
    ar = int.from_bytes(counts[6:8], "big")
    counts_edns = counts[:6] + (ar + 1).to_bytes(2, "big")
    tail_plain = message[end:]
    tail_edns = tail_plain + OPT_RR
    heads: list[bytes] = []
    tc_heads: list[bytes] = []
    for variant in range(4):
        rd, edns = variant & 1, variant >> 1
        f = bytes((flags[0] | rd, flags[1]))
        heads.append(f + (counts_edns if edns else counts))
        tc_heads.append(bytes((f[0] | 0x02, f[1])) + ONE_QUESTION + (b"\x00\x01" if edns else b"\x00\x00"))
    head0, head1, head2, head3 = heads
    tc0, tc1, tc2, tc3 = tc_heads
    return Packed(
        head0,
        head1,
        head2,
        head3,
        tc0,
        tc1,
        tc2,
        tc3,
        tail_plain,
        tail_edns,
        end + len(tail_plain),
        end + len(tail_edns),
        question,
    )


def reply_from(packed: Packed, query: bytes, question: bytes, rd: int, edns: int, limit: int) -> bytes:
    """The reply to `query` (its ID, RD bit and question bytes); TC and no records when over `limit`."""
    if (packed.size1 if edns else packed.size0) <= limit:
        return (
            query[:2]
            + cast(bytes, packed[HEAD + (rd | edns << 1)])
            + question
            + (packed.tail1 if edns else packed.tail0)
        )
    return query[:2] + cast(bytes, packed[TC_HEAD + (rd | edns << 1)]) + question + (OPT_RR if edns else b"")


def truncated_reply(reply: bytes, question: bytes, edns: int) -> bytes:
    """`reply` (someone else's answer) cut to its header and question, with TC set: "ask over TCP"."""
    counts = (ONE_QUESTION if question else bytes(6)) + (b"\x00\x01" if edns else b"\x00\x00")
    return reply[:2] + bytes((reply[2] | 0x02, reply[3])) + counts + question + (OPT_RR if edns else b"")


def error_reply(query: bytes, rcode: int, question: bytes = b"", edns: bool = False) -> bytes:
    """A header-only (or header + question) reply with `rcode`, echoing the query's ID, opcode and RD."""
    flags = bytes((0x80 | (query[2] & 0x79), rcode & 0x0F))  # QR, opcode and RD from the query
    ar = b"\x00\x01" if edns else b"\x00\x00"
    qd = b"\x00\x01" if question else b"\x00\x00"
    opt = b""
    if edns:
        # Extended rcode (BADVERS = 16) keeps its upper bits in the OPT TTL.
        opt = OPT_RR[:5] + bytes((rcode >> 4,)) + OPT_RR[6:]
    return query[:2] + flags + qd + b"\x00\x00\x00\x00" + ar + question + opt


RCODE_BADVERS = 16  # extended rcode for an EDNS version we do not speak
