"""The flow ring: what the data paths record, one tuple per DNS query, connection, UDP flow or HTTP request.

Recording must cost next to nothing on the hot paths (a DNS cache hit is a few microseconds), so a data path
only builds one tuple of what it has at hand (addresses, the route object, the reply's bytes) and appends it
to `pending` through `record`, a bound `list.append`: no formatting, no lookups, no dict, no clock but the
loop's. Every DRAIN_INTERVAL (and before every read) `drain` moves the pending records into the ring (a
`deque(maxlen=size)`: the oldest fall out; ids are implicit, consecutive from the first record ever), feeds
the data-path counters of /metrics (`DataPathStats`) and hands them to the watchers. Names (pods,
services) are looked up only when a flow is read (reader.py).

The counters are fed in batches without a Python call per record: the cache answers by their answer's
class, a small number standing for its (query type, rcode) (`FlowLog.dns_class`, given once per cached
reply): the classes of a batch are one `bytes` counted with `bytes.count`, a C loop (duration 0: answered
within the loop's turn); the others by distinct key (`Counter`s over `operator.itemgetter`s run in C), and
only the distinct keys are decoded.

Record layouts (tuples; `t` is the loop's time, turned into wall-clock time when read):
    (t, client, answer)                                 a UDP answer from the DNS cache (the hot path):
                                                        client (address, port) and `answer`, made once
                                                        per cached reply: (the reply past its ID with the
                                                        question as cached (lower case), its class).
                                                        Only bytes and ints: the cyclic GC untracks
                                                        such tuples, so records never pile up in it
    (t, DNS, client_ip, proto, reply, seconds)          any other DNS answer, its bytes past the ID
    (t, TCP|UDP, client_ip, dst, service, endpoint, verdict, reason, sent, received, seconds)
    (t, HTTP, client_ip, dst, service, endpoint, verdict, reason, sent, received, seconds,
        method, host, path, status, route)
`dst` is the (address, port) the client reached or None; `service` a proxy `Route` (namespace, service,
port), a "namespace/name:port" label or None; `endpoint` an (address, port) or None; `verdict` ALLOWED,
DENIED or ERROR; `reason` the policy's reason or what failed; `sent`/`received` bytes (-1: unknown);
`method`, `host`, `path` bytes; `route` what routed the request ("ingress default/shop") or None. An HTTP
record's `seconds` is never negative (0 for an answer the proxy wrote before sending anything on).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import operator
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emulator.observability.stats import PROXY_DURATION_BUCKETS, PlainHistogram

if TYPE_CHECKING:
    from emulator.observability.stats import DataPathStats

log = logging.getLogger("emulator.flows")

DNS, TCP, UDP, HTTP = "dns", "tcp", "udp", "http"
KINDS = (DNS, TCP, UDP, HTTP)
ALLOWED, DENIED, ERROR = "allowed", "denied", "error"
VERDICTS = (ALLOWED, DENIED, ERROR)

API_PATH = "/emulator/v1/flows"  # where the API serves them (api/flows.py; emulator flows reads it)
DEFAULT_SIZE = 10_000
DRAIN_INTERVAL = 0.1  # seconds between two drains: how late a watcher may see a flow, at most
WATCHER_BACKLOG = 10_000  # flows queued for one watcher that does not keep up, before it is cut off

Record = tuple[Any, ...]
Numbered = tuple[int, Record]  # (id, record)

# positions in a record
T, KIND, CLIENT = 0, 1, 2
CACHED = 3  # the length of a DNS cache answer's record
CACHED_CLIENT, CACHED_ANSWER = 1, 2
ANSWER_REPLY, ANSWER_CLASS = 0, 1  # in a cache answer's `answer`
OTHER_CLASS = 255  # the class of cache answers past the first 255 (query type, rcode) pairs: counted one by one
DNS_PROTO, DNS_REPLY, DNS_SECONDS = 3, 4, 5
DST, SERVICE, ENDPOINT, VERDICT, REASON, SENT, RECEIVED, SECONDS = 3, 4, 5, 6, 7, 8, 9, 10
METHOD, HOST, PATH, STATUS, ROUTE = 11, 12, 13, 14, 15


class FlowWatcher:
    """One follower of the ring (a `?watch=1` stream): flows queued for it, at most `limit`; past that it is
    `overflowed` (it does not read fast enough) and gets nothing more, so that it cannot hold memory."""

    __slots__ = ("queue", "limit", "overflowed", "ready")

    def __init__(self, limit: int = WATCHER_BACKLOG) -> None:
        self.queue: deque[Numbered] = deque()
        self.limit = limit
        self.overflowed = False
        self.ready = asyncio.Event()

    def offer(self, flows: list[Numbered]) -> None:
        if self.overflowed:
            return
        if len(self.queue) + len(flows) > self.limit:
            self.overflowed = True
            self.queue.clear()
        else:
            self.queue.extend(flows)
        self.ready.set()

    async def next(self, timeout: float | None = None) -> list[Numbered]:
        """The flows queued since the last call (waiting up to `timeout` for one; [] if none came)."""
        if not self.queue and not self.overflowed:
            self.ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self.ready.wait()
            except TimeoutError:
                return []
        taken = list(self.queue)
        self.queue.clear()
        return taken


class FlowLog:
    """The ring of flows, its pending records, its watchers. `record` is what data paths call."""

    def __init__(self, size: int = DEFAULT_SIZE, stats: DataPathStats | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ring: deque[Record] = deque(maxlen=size)  # ring[i]'s id: next_id - len(ring) + i
        self.pending: list[Record] = []
        self.record: Callable[[Record], None] = self.pending.append
        self.clock = clock  # the loop's time once started: what records' `t` is read from
        self._offset = time.time() - clock()
        self.next_id = 1
        self.stats = stats
        self.watchers: set[FlowWatcher] = set()
        self.dns_classes: list[tuple[int, int]] = []  # a DNS cache answer's class -> its (query type, rcode)
        self._dns_class: dict[tuple[int, int], int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def dns_class(self, qtype: int, rcode: int) -> int:
        """The class (0-255) that DNS cache answers of this query type and rcode are counted by."""
        key = (qtype, rcode)
        number = self._dns_class.get(key)
        if number is None:
            if len(self.dns_classes) >= OTHER_CLASS:
                return OTHER_CLASS
            number = self._dns_class[key] = len(self.dns_classes)
            self.dns_classes.append(key)
        return number

    # -- life ------------------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.clock = loop.time
        self._offset = time.time() - loop.time()
        self._timer = loop.call_later(DRAIN_INTERVAL, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.drain()
        for watcher in self.watchers:
            watcher.overflowed = True  # ends their streams
            watcher.ready.set()

    def _tick(self) -> None:
        try:
            self.drain()
        except Exception:  # never stop draining over one odd record
            log.exception("flows could not be drained")
        if self._loop is not None and self._timer is not None:
            self._timer = self._loop.call_later(DRAIN_INTERVAL, self._tick)

    # -- reading ---------------------------------------------------------------------------------------

    def drain(self) -> None:
        """Keep the pending records in the ring, count them for /metrics, wake the watchers."""
        pending = self.pending  # the list itself stays: data paths hold its bound append
        if not pending:
            return
        first = self.next_id
        self.next_id = first + len(pending)
        # only what stays: under load a drain brings more than the ring holds
        self.ring.extend(pending if len(pending) <= self.size else pending[-self.size :])
        try:
            if self.stats is not None:
                count(self.stats, pending, self.dns_classes)
            if self.watchers:
                numbered = list(zip(itertools.count(first), pending))
                for watcher in self.watchers:
                    watcher.offer(numbered)
        finally:
            pending.clear()

    def since(self, after: int = 0) -> list[Numbered]:
        """The flows in the ring with an id above `after`, oldest first, as (id, record)."""
        self.drain()
        ring = self.ring
        first = self.next_id - len(ring)  # the oldest one's id
        start = max(0, after - first + 1)
        if start >= len(ring):
            return []
        return list(zip(itertools.count(first + start), itertools.islice(ring, start, None)))

    def wall_offset(self) -> float:
        """What to add to a record's `t` for wall-clock seconds (the loop's clock is monotonic). Taken once,
        so that a flow's time reads the same every time it is read."""
        return self._offset

    def watch(self, limit: int = WATCHER_BACKLOG) -> FlowWatcher:
        watcher = FlowWatcher(limit)
        self.watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: FlowWatcher) -> None:
        self.watchers.discard(watcher)


# -- /metrics: the data-path counters, fed in batches --------------------------------------------------


def dns_question(body: bytes) -> tuple[int, int]:
    """(query type, rcode) of a reply past its ID whose question's name is written plainly (ours are)."""
    end = body.find(0, 10)
    qtype = int.from_bytes(body[end + 1 : end + 3], "big") if end > 0 else 0
    return qtype, body[1] & 0x0F if len(body) > 1 else 2


def service_port(service: Any) -> tuple[Any, Any]:
    """A record's service as the stats key it uses: ((namespace, name), port), from a Route or a label."""
    if service is None:
        return None, ""
    if isinstance(service, str):
        name, _, port = service.rpartition(":")
        return (name or service), (int(port) if port.isdigit() else port)
    return (service.namespace, service.service), service.port


_KIND = operator.itemgetter(KIND)
_ANSWER = operator.itemgetter(CACHED_ANSWER)
_ANSWER_CLASS = operator.itemgetter(ANSWER_CLASS)
_DNS_KEY = operator.itemgetter(DNS_PROTO, DNS_REPLY, DNS_SECONDS)


def kind_of(record: Record) -> str:
    return DNS if len(record) == CACHED else str(record[KIND])


def cached_reply(record: Record) -> bytes:
    """A DNS cache answer's reply past its ID, as it was sent (with the question as cached: lower case)."""
    return bytes(record[CACHED_ANSWER][ANSWER_REPLY])


def count(stats: DataPathStats, records: list[Record], dns_classes: list[tuple[int, int]] | tuple[()] = ()) -> None:
    """Feed a batch of records to the data-path counters (DataPathStats' counters bumped by the number of
    each distinct key); `dns_classes` what the cache answers' classes stand for (FlowLog.dns_classes)."""
    cached = bytes(map(len, records)).count(CACHED)  # records are shorter than 256: their lengths are bytes
    if cached:
        if cached == len(records):
            count_cached(stats, records, dns_classes)
            return
        count_cached(stats, [r for r in records if len(r) == CACHED], dns_classes)
        records = [r for r in records if len(r) != CACHED]
    kinds = Counter(map(_KIND, records))
    dns = kinds.get(DNS, 0)
    if dns:
        count_dns(stats, records if dns == len(records) else [r for r in records if r[KIND] == DNS])
    if dns < len(records):
        requests = kinds.get(HTTP, 0)
        if requests == len(records):
            count_requests(stats, records)
            return
        others = records if not dns else [r for r in records if r[KIND] != DNS]
        count_connections(stats, [r for r in others if r[KIND] != HTTP] if requests else others)
        if requests:
            count_requests(stats, [r for r in others if r[KIND] == HTTP])


def count_cached(stats: DataPathStats, records: list[Record], dns_classes: list[tuple[int, int]] | tuple[()] = ()) -> None:
    """Count DNS cache answers (records of length CACHED only) by class: the batch's classes as one `bytes`,
    each class counted with `bytes.count` (a C loop; a few classes per batch however many queries)."""
    classes = bytes(map(_ANSWER_CLASS, map(_ANSWER, records)))
    left = len(classes)
    if len(dns_classes) <= 16:
        present: Any = ((number, classes.count(number)) for number in range(len(dns_classes)))
    else:
        present = Counter(classes).items()
    requests, responses = stats.dns_requests, stats.dns_responses
    for number, times in present:
        if times and number < len(dns_classes):
            qtype, rcode = dns_classes[number]
            requests[(qtype, "udp")] += times
            responses[rcode] += times
            left -= times
            if not left:
                break
    if left:  # OTHER_CLASS, or a class its FlowLog did not give: read from the reply itself
        for answer in map(_ANSWER, records):
            if answer[ANSWER_CLASS] >= len(dns_classes):
                qtype, rcode = dns_question(answer[ANSWER_REPLY])
                requests[(qtype, "udp")] += 1
                responses[rcode] += 1
    stats.dns_duration.counts[0] += len(records)  # answered within the loop's turn: the first bucket


def count_dns(stats: DataPathStats, records: list[Record]) -> None:
    histogram = stats.dns_duration
    for (proto, body, seconds), times in Counter(map(_DNS_KEY, records)).items():
        qtype, rcode = dns_question(body)
        stats.dns_requests[(qtype, proto)] += times
        stats.dns_responses[rcode] += times
        histogram.counts[bisect.bisect_left(histogram.bounds, seconds)] += times
        histogram.total += seconds * times


_SERVICE = operator.itemgetter(SERVICE)
_SECONDS = operator.itemgetter(SECONDS)
_CONNECTION_KEY = operator.itemgetter(KIND, SERVICE, VERDICT)
_REQUEST_KEY = operator.itemgetter(SERVICE, STATUS, VERDICT)


def count_connections(stats: DataPathStats, connections: list[Record]) -> None:
    for (kind, service, verdict), times in Counter(map(_CONNECTION_KEY, connections)).items():
        name, port = service_port(service)
        stats.proxy_connections[(name, port, "UDP" if kind == UDP else "TCP", verdict)] += times
    for record in connections:
        if record[SENT] > 0 or record[RECEIVED] > 0:
            name, port = service_port(record[SERVICE])
            stats.proxy_transfer(name, port, max(record[SENT], 0), max(record[RECEIVED], 0))


def count_requests(stats: DataPathStats, requests: list[Record]) -> None:
    """Requests by distinct key, their durations bucketed in C: no Python call per request (a proxied
    request costs a few microseconds; counting it must not add one)."""
    for (service, status, verdict), times in Counter(map(_REQUEST_KEY, requests)).items():
        name, port = service_port(service)
        stats.proxy_requests[(name, port, status, verdict)] += times
    bucket_of = map(bisect.bisect_left, itertools.repeat(PROXY_DURATION_BUCKETS), map(_SECONDS, requests))
    for (service, bucket), times in Counter(zip(map(_SERVICE, requests), bucket_of, strict=True)).items():
        histogram_of(stats, service).counts[bucket] += times
    services = set(map(_SERVICE, requests))
    if len(services) == 1:
        histogram_of(stats, services.pop()).total += sum(map(_SECONDS, requests))
    else:
        for record in requests:
            histogram_of(stats, record[SERVICE]).total += record[SECONDS]


def histogram_of(stats: DataPathStats, service: Any) -> PlainHistogram:
    key = service_port(service)
    histogram = stats.proxy_durations.get(key)
    if histogram is None:
        histogram = stats.proxy_durations[key] = PlainHistogram(PROXY_DURATION_BUCKETS)
    return histogram
