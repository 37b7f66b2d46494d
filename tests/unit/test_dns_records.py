"""Answer building and the packed-answer cache, without sockets."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, DNSRecord

from emulator.dns import DnsIndex, DnsSettings
from emulator.dns import synthetic as make
from emulator.dns.index import service_record
from emulator.dns.wire import pack_answer, reply_from
from emulator.kinds.service import ServiceView
from emulator.store.events import DELETED, MODIFIED

Z = "cluster.local"


def labels(name: str) -> tuple[str, ...]:
    return tuple(name.lower().split("."))


def index_with(*events) -> DnsIndex:
    index = DnsIndex(DnsSettings(upstreams=[]))
    for event in events:
        index.apply(event)
    return index


def rdata(index: DnsIndex, name: str, qtype: int = QTYPE.A) -> tuple[int, set[str]]:
    answer, _ = index.answer(labels(name), qtype)
    assert answer is not None
    return answer.rcode, {str(rr.rdata) for rr in answer.answer}


def test_service_records_from_objects() -> None:
    obj = make.service("Web", cluster_ip="10.0.0.1").obj
    record = service_record(ServiceView.of(obj))
    assert (record.kind, record.cluster_ips, record.ports[0].name) == ("cluster", ("10.0.0.1",), "http")
    assert service_record(ServiceView.of(make.service("h", cluster_ip="None").obj)).kind == "headless"
    ext = service_record(ServiceView.of(make.service("e", external_name="Example.ORG.").obj))
    assert (ext.kind, ext.external_name) == ("external", "example.org")


def test_dual_stack_service_answers_a_and_aaaa() -> None:
    event = make.service("web", cluster_ip="10.0.0.1")
    obj = event.obj
    obj["spec"]["clusterIPs"] = ["10.0.0.1", "fd00::1"]
    index = index_with(make.event("services", obj))
    assert rdata(index, f"web.default.svc.{Z}") == (RCODE.NOERROR, {"10.0.0.1"})
    assert rdata(index, f"web.default.svc.{Z}", QTYPE.AAAA) == (RCODE.NOERROR, {"fd00::1"})


def test_headless_srv_weights_and_targets() -> None:
    index = index_with(
        make.service("db", cluster_ip="None"),
        make.endpoints("db", ready=[("10.1.0.1", "db-0"), ("10.1.0.2", "db-1"), "10.1.0.3"]),
    )
    answer, _ = index.answer(labels(f"_http._tcp.db.default.svc.{Z}"), QTYPE.SRV)
    assert answer is not None
    assert sorted(str(rr.rdata) for rr in answer.answer) == [
        f"0 33 8080 10-1-0-3.db.default.svc.{Z}.",
        f"0 33 8080 db-0.db.default.svc.{Z}.",
        f"0 33 8080 db-1.db.default.svc.{Z}.",
    ]
    assert len(answer.additional) == 3


def test_external_name_loop_is_not_followed_forever() -> None:
    index = index_with(
        make.service("a", external_name=f"b.default.svc.{Z}"),
        make.service("b", external_name=f"a.default.svc.{Z}"),
    )
    assert rdata(index, f"a.default.svc.{Z}") == (RCODE.NOERROR, set())


def test_reads_are_recorded_and_events_invalidate_exactly_them() -> None:
    index = index_with(make.service("web", cluster_ip="10.0.0.1"), make.service("other", cluster_ip="10.0.0.2"))
    for name in ("web", "other"):
        answer, reads = index.answer(labels(f"{name}.default.svc.{Z}"), QTYPE.A)
        assert answer is not None
        index.remember(name.encode(), pack_answer((name.encode(),), QTYPE.A, answer, False), reads)
    assert set(index.cache) == {b"web", b"other"}
    index.apply(make.service("web", cluster_ip="10.0.0.9", type=MODIFIED))
    assert set(index.cache) == {b"other"}  # only what read "web" is gone
    index.apply(make.endpoints("other", ready=["10.1.0.1"]))
    assert index.cache == {}
    index.apply(make.service("web", cluster_ip="10.0.0.9", type=DELETED))
    assert rdata(index, f"web.default.svc.{Z}")[0] == RCODE.NXDOMAIN


def test_unchanged_objects_keep_the_cache() -> None:
    index = index_with(make.service("web", cluster_ip="10.0.0.1"))
    answer, reads = index.answer(labels(f"web.default.svc.{Z}"), QTYPE.A)
    index.remember(b"k", object(), reads)
    index.apply(make.service("web", cluster_ip="10.0.0.1", type=MODIFIED))  # e.g. only a label changed
    index.apply(make.event("pods", {"metadata": {"name": "p", "namespace": "default"}}))
    assert b"k" in index.cache


def test_cache_is_bounded() -> None:
    index = DnsIndex(DnsSettings(max_cached_answers=3))
    for i in range(10):
        index.remember(str(i).encode(), object(), frozenset({("svc", "default", str(i))}))
    assert len(index.cache) <= 3


def test_bad_objects_do_not_raise() -> None:
    index = DnsIndex()
    index.apply(make.event("services", {"metadata": {"name": "x"}, "spec": {"ports": "nonsense"}}))
    index.apply(make.event("endpoints", {"metadata": {"name": "x"}, "subsets": [{"addresses": [{"ip": "bad"}]}]}))


def test_packed_reply_patches_id_case_and_truncates() -> None:
    index = index_with(
        make.service("big", cluster_ip="None"), make.endpoints("big", ready=[f"10.2.0.{i}" for i in range(1, 80)])
    )
    name = f"big.default.svc.{Z}"
    answer, _ = index.answer(labels(name), QTYPE.A)
    assert answer is not None
    packed = pack_answer(tuple(label.encode() for label in labels(name)), QTYPE.A, answer, False)
    query = DNSRecord.question(name.upper())
    query.header.id = 4242
    wire = bytes(query.pack())
    question = wire[12:]
    full = DNSRecord.parse(reply_from(packed, wire, question, 1, 0, 65535))
    assert full.header.id == 4242 and full.header.rd == 1 and len(full.rr) == 79
    assert str(full.rr[0].rname) == name.upper() + "."
    cut = DNSRecord.parse(reply_from(packed, wire, question, 1, 0, 512))
    assert cut.header.tc == 1 and not cut.rr and cut.header.id == 4242


def test_names_that_cannot_be_encoded() -> None:
    from emulator.dns.records import encodable_name

    longest = ".".join(["a" * 62] * 4) + ".a"  # 253 characters, 255 bytes on the wire: the most there may be
    for good in ("example.org", "a" * 63 + ".org", longest, "ünïcode.example", "x"):
        assert encodable_name(good), good
    too_long = longest + "b"
    for bad in ("a" * 64 + ".org", "foo..org", too_long, "ü" * 60 + ".org", ""):
        assert not encodable_name(bad), bad


def test_external_name_that_cannot_be_encoded_is_servfail_and_can_be_packed() -> None:
    index = index_with(
        make.service("bad", external_name="a" * 64 + ".example.org"),
        make.service("alias", external_name=f"bad.default.svc.{Z}"),
    )
    assert service_record(ServiceView.of(make.service("bad", external_name="a" * 64 + ".x").obj)).unanswerable
    for name, qtype in ((f"bad.default.svc.{Z}", QTYPE.A), (f"bad.default.svc.{Z}", QTYPE.TXT),
                        (f"bad.default.svc.{Z}", QTYPE.SRV), ("bad", QTYPE.A), (f"alias.default.svc.{Z}", QTYPE.A)):
        answer, _ = index.answer(labels(name), qtype)
        assert answer is not None and answer.rcode == RCODE.SERVFAIL and not answer.answer, (name, qtype)
        pack_answer(tuple(label.encode() for label in labels(name)), qtype, answer, False)  # does not raise
    assert rdata(index, f"alias.default.svc.{Z}", QTYPE.TXT) == (RCODE.NOERROR, {f"bad.default.svc.{Z}."})


def test_ingress_and_route_hostnames_in_the_zone_or_a_gateway_domain_answer_the_gateway() -> None:
    index = index_with(make.service("web", cluster_ip="10.96.0.10"))
    index.set_gateway_names("127.0.0.1", frozenset({"shop.localhost", "app.cluster.local"}), ((".apps.localhost", True), (".gw.cluster.local", False)))
    assert rdata(index, "shop.localhost") == (RCODE.NOERROR, {"127.0.0.1"})
    assert rdata(index, "app.cluster.local") == (RCODE.NOERROR, {"127.0.0.1"})
    assert rdata(index, "a.apps.localhost") == (RCODE.NOERROR, {"127.0.0.1"})
    # Ingress wildcards cover one label, Gateway API wildcards any depth
    assert index.answer(labels("a.b.apps.localhost"), QTYPE.A)[0] is None
    assert rdata(index, "a.b.gw.cluster.local") == (RCODE.NOERROR, {"127.0.0.1"})
    # other types: the name exists, nothing of that type
    assert rdata(index, "shop.localhost", QTYPE.AAAA) == (RCODE.NOERROR, set())
    # a hostname outside the zone and the gateway domains is the user's own: not answered (forwarded)
    index.set_gateway_names("127.0.0.1", frozenset({"shop.example.com"}), ())
    assert index.answer(labels("shop.example.com"), QTYPE.A)[0] is None
    # services still answer as before
    assert rdata(index, "web.default.svc.cluster.local") == (RCODE.NOERROR, {"10.96.0.10"})


def test_a_change_of_gateway_names_drops_cached_answers() -> None:
    index = index_with()
    index.remember(b"question", b"packed", frozenset())
    index.set_gateway_names("127.0.0.1", frozenset({"shop.localhost"}), ())
    assert index.cache == {}
    index.remember(b"question", b"packed", frozenset())
    index.set_gateway_names("127.0.0.1", frozenset({"shop.localhost"}), ())  # unchanged: the cache stays
    assert index.cache == {b"question": b"packed"}
