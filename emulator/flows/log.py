"""The flow ring: what the data paths record, one tuple per DNS query, connection, UDP flow or HTTP request.

Recording must cost next to nothing on the hot paths (a DNS cache hit is a few microseconds), so a data path
only builds one tuple of what it has at hand (addresses, the service's label, the reply's bytes) and appends
it to `pending` through `record`, a bound `list.append`: no formatting, no dict but one C lookup, no clock
but the loop's (a DNS cache answer: three items on `cached` through `record_cached`). Every DRAIN_INTERVAL
(DRAIN_BUSY under load; and before every read) `drain` writes the pending records into the ring (fixed
slots written in place, see `FlowLog`: the oldest are overwritten; ids are implicit, consecutive from the
first record ever), feeds the data-path counters of /metrics (`DataPathStats`) and hands them to the
watchers. Names (pods, services) are looked up only when a flow is read (reader.py).

Records hold no object that would keep them in the cyclic collector (no Route, only strings, numbers, bytes
and tuples of them): the collector untracks such a tuple on its first pass, so 10,000 records in the ring
are not walked again by every older-generation pass.

The counters are fed in batches without a Python call per record: the cache answers by their answer's
class, a small number standing for its (query type, rcode) (`FlowLog.dns_class`, given once per cached
reply): the classes of a batch are one `bytes` counted with `bytes.count`, a C loop (duration 0: answered
within the loop's turn); the others by distinct key (`Counter`s over `operator.itemgetter`s run in C), and
only the distinct keys are decoded.

Record layouts (tuples; `t` is the loop's time, turned into wall-clock time when read):
    (t, client, answer)                                 a UDP answer from the DNS cache (the hot path):
                                                        client (address, port), shared through CLIENTS,
                                                        and `answer`, made once per cached reply: (the
                                                        reply past its ID with the question as cached
                                                        (lower case), its class). Kept in the ring as a
                                                        double and two shared references, made into this
                                                        tuple only when read
    (t, DNS, client_ip, proto, reply, seconds)          any other DNS answer, its bytes past the ID
    (t, TCP|UDP, client_ip, dst, service, endpoint, verdict, reason, sent, received, seconds)
    (t, HTTP, client_ip, dst, service, endpoint, verdict, reason, sent, received, seconds,
        method, host, path, status, route)
`dst` is the (address, port) the client reached or None; `service` the proxy route's "namespace/name:port"
label (`SERVICE_KEYS[route]`) or None; `endpoint` an (address, port) or None; `verdict` ALLOWED,
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
from array import array
from collections import Counter, deque
from collections.abc import Callable, Sequence
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
# Under load the drain comes sooner: records waiting in `pending` are memory the allocator cannot hand out
# again, and 100 ms of a busy proxy's records (~7,000, ~2 MB) push its working set out of the CPU's cache
# (measured: ~0.5-1 us more per proxied request). A drain that found BUSY_RECORDS or more comes again
# after DRAIN_BUSY; idle, the timer stays at DRAIN_INTERVAL.
DRAIN_BUSY = 0.01
BUSY_RECORDS = 256
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


class ServiceKeys(dict[Any, Any]):
    """A proxy `Route` -> its "namespace/name:port" label, for records: `SERVICE_KEYS[route]`, a dict lookup
    in C. A record that holds only strings, numbers, bytes and tuples of them is left alone by the cyclic
    collector (its first pass untracks it); one that holds the Route object stays tracked, and 10,000 of
    them in the ring are walked by every older-generation pass. Bounded: cleared past MAX_SERVICE_KEYS."""

    def __missing__(self, route: Any) -> str | None:
        if route is None:
            return None
        if len(self) >= MAX_SERVICE_KEYS:
            self.clear()
        label = self[route] = f"{route.namespace}/{route.service}:{route.port}"
        return label


MAX_SERVICE_KEYS = 4096
SERVICE_KEYS = ServiceKeys()
# A DNS client's (address, port) -> that same tuple: a drain of a few cache answers keeps
# `CLIENTS.setdefault(addr, addr)` of each one's client, so that the ring holds one tuple per client, not the
# one each datagram came with (three objects per record that would live as long as it, spread over the heap,
# keeping a burst's memory from going back: bench/hardening). Under load (BUSY_RECORDS or more per drain) a
# record is overwritten within milliseconds and the lookup (~0.1 us a query) is left out. Cleared past
# MAX_CLIENTS.
CLIENTS: dict[tuple[str, int], tuple[str, int]] = {}
MAX_CLIENTS = 4096


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
    """The ring of flows, its pending records, its watchers. `record` (and `record_cached`, for the DNS
    cache's answers) is what data paths call.

    The ring is three preallocated arrays written in place, slot `(id - 1) % size`: a cache answer's time
    (a C double in an `array`; a record tuple holds its own), the record tuple or a cache answer's client,
    and a cache answer's `answer` (None for a tuple). A DNS cache answer keeps no object of its own: its client is the shared tuple from
    `CLIENTS`, its answer the one cached with the reply, its time a double. So answering from the cache
    allocates nothing that outlives the next drain, and a burst of allocations elsewhere (3,000 watches
    opening) finds no long-lived record in its memory to keep the allocator's arenas from going back to the
    system (bench/hardening). The data path writes a cache answer as three items on `cached`
    (`record_cached((t, client, answer))`: the tuple is freed at once), read back three by three."""

    def __init__(self, size: int = DEFAULT_SIZE, stats: DataPathStats | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self._times = array("d", bytes(8 * size))  # slot -> a cache answer's time (a tuple carries its own)
        self._first: list[Any] = [None] * size  # slot -> the record (a tuple), or a cache answer's client
        self._answers: list[Any] = [None] * size  # slot -> a cache answer's `answer`; None: _first holds the record
        self._nones: list[None] = [None] * size  # what marks slots as holding record tuples, sliced
        self.pending: list[Record] = []
        self.cached: list[Any] = []  # cache answers not drained yet: t, client, answer, t, client, answer, ...
        self.record: Callable[[Record], None] = self.pending.append
        self.record_cached: Callable[[tuple[float, Any, Any]], None] = self.cached.extend
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
        busy = len(self.pending) + len(self.cached) // 3 >= BUSY_RECORDS
        try:
            self.drain()
        except Exception:  # never stop draining over one odd record
            log.exception("flows could not be drained")
        if self._loop is not None and self._timer is not None:
            self._timer = self._loop.call_later(DRAIN_BUSY if busy else DRAIN_INTERVAL, self._tick)

    # -- reading ---------------------------------------------------------------------------------------

    def drain(self) -> None:
        """Keep the pending records in the ring, count them for /metrics, wake the watchers."""
        pending, cached = self.pending, self.cached  # the lists themselves stay: data paths hold their methods
        if len(CLIENTS) > MAX_CLIENTS:
            CLIENTS.clear()
        if not pending and not cached:
            return
        try:
            if not pending:  # only cache answers (a DNS load): no tuple made
                times, clients, answers = cached[0::3], cached[1::3], cached[2::3]
                if len(times) < BUSY_RECORDS:  # each datagram's own (address, port): one shared tuple per client
                    clients = list(map(CLIENTS.setdefault, clients, clients))
                self._keep(times, clients, answers)
                if self.stats is not None:
                    count_cached(self.stats, answers, self.dns_classes)
                records: list[Record] | None = None
            else:
                records = pending
                if cached:  # both kinds: one list in time order (ids follow it)
                    records = sorted(itertools.chain(pending, zip(cached[0::3], cached[1::3], cached[2::3], strict=True)), key=_T)
                self._keep(None, records, None)
                if self.stats is not None:
                    count(self.stats, records, self.dns_classes)
            first = self.next_id
            self.next_id = first + (len(records) if records is not None else len(cached) // 3)
            if self.watchers:
                if records is None:
                    records = list(zip(cached[0::3], cached[1::3], cached[2::3], strict=True))
                numbered = list(zip(itertools.count(first), records))
                for watcher in self.watchers:
                    watcher.offer(numbered)
        finally:
            pending.clear()
            cached.clear()

    def _keep(self, times: Sequence[float] | None, first: Sequence[Any], answers: Sequence[Any] | None) -> None:
        """Write records next_id, next_id + 1, ... into their slots (only the last `size`: under load a
        drain brings more than the ring holds). Cache answers come as their times, clients and answers;
        record tuples as `first` alone (times and answers None: their time is in the tuple, and a slot
        whose answer is None holds a tuple)."""
        size, n = self.size, len(first)
        skip = max(0, n - size)
        start = (self.next_id - 1 + skip) % size
        done = skip
        while done < n:
            take = min(n - done, size - start)
            if times is not None:
                self._times[start : start + take] = array("d", times[done : done + take])
            self._first[start : start + take] = first[done : done + take]
            self._answers[start : start + take] = answers[done : done + take] if answers is not None else self._nones[:take]
            done += take
            start = 0

    @property
    def held(self) -> int:
        """How many flows the ring holds (at most `size`)."""
        return min(self.next_id - 1, self.size)

    def since(self, after: int = 0) -> list[Numbered]:
        """The flows in the ring with an id above `after`, oldest first, as (id, record)."""
        self.drain()
        first = self.next_id - self.held  # the oldest one's id
        start = max(first, after + 1)
        if start >= self.next_id:
            return []
        size = self.size
        begin, n = (start - 1) % size, self.next_id - start
        slots = [*range(begin, min(size, begin + n)), *range(0, max(0, begin + n - size))]
        times, firsts, answers = self._times, self._first, self._answers
        return [
            (number, firsts[slot] if answers[slot] is None else (times[slot], firsts[slot], answers[slot]))
            for number, slot in zip(itertools.count(start), slots)
        ]

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


def service_port(service: str | None) -> tuple[Any, Any]:
    """A record's service label as the stats key it uses: ("namespace/name", port)."""
    if service is None:
        return None, ""
    name, _, port = service.rpartition(":")
    return (name or service), (int(port) if port.isdigit() else port)


_T = operator.itemgetter(T)
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
    each distinct key); `dns_classes` what the cache answers' classes stand for (FlowLog.dns_classes).
    A record's length tells its layout (a TCP and a UDP record share one: their keys tell them apart), so a
    batch is split by kind in C: its lengths as one `bytes`, each kind picked with `compress`."""
    lengths = bytes(map(len, records))  # records are shorter than 256: their lengths are bytes
    total = len(records)
    for length, counter in _COUNTERS:
        n = lengths.count(length)
        if n == len(records):
            counter(stats, records, dns_classes)
            return
        if n:
            counter(stats, list(itertools.compress(records, map(operator.eq, lengths, itertools.repeat(length)))), dns_classes)
            total -= n
            if not total:
                return


def count_cached(stats: DataPathStats, answers: list[Any], dns_classes: list[tuple[int, int]] | tuple[()] = ()) -> None:
    """Count DNS cache answers (their `answer`s: reply, class) by class: the batch's classes as one `bytes`,
    each class counted with `bytes.count` (a C loop; a few classes per batch however many queries)."""
    classes = bytes(map(_ANSWER_CLASS, answers))
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
        for answer in answers:
            if answer[ANSWER_CLASS] >= len(dns_classes):
                qtype, rcode = dns_question(answer[ANSWER_REPLY])
                requests[(qtype, "udp")] += 1
                responses[rcode] += 1
    stats.dns_duration.counts[0] += len(answers)  # answered within the loop's turn: the first bucket


def count_cached_records(stats: DataPathStats, records: list[Record], dns_classes: list[tuple[int, int]] | tuple[()] = ()) -> None:
    """`count_cached` of DNS cache answers' records (length CACHED)."""
    count_cached(stats, list(map(_ANSWER, records)), dns_classes)


def count_dns(stats: DataPathStats, records: list[Record], dns_classes: object = ()) -> None:
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
_STATUS = operator.itemgetter(STATUS)
_VERDICT = operator.itemgetter(VERDICT)


def count_connections(stats: DataPathStats, connections: list[Record], dns_classes: object = ()) -> None:
    for (kind, service, verdict), times in Counter(map(_CONNECTION_KEY, connections)).items():
        name, port = service_port(service)
        stats.proxy_connections[(name, port, "UDP" if kind == UDP else "TCP", verdict)] += times
    for record in connections:
        if record[SENT] > 0 or record[RECEIVED] > 0:
            name, port = service_port(record[SERVICE])
            stats.proxy_transfer(name, port, max(record[SENT], 0), max(record[RECEIVED], 0))


def count_requests(stats: DataPathStats, requests: list[Record], dns_classes: object = ()) -> None:
    """Requests by distinct (service, status, verdict, duration bucket), counted in one C pass: no Python
    call per request (a proxied request costs a few microseconds; counting it must not add one). The key
    tuples come from `zip`, which reuses its tuple while `Counter` keeps none of them."""
    buckets = map(bisect.bisect_left, itertools.repeat(PROXY_DURATION_BUCKETS), map(_SECONDS, requests))
    keys = Counter(zip(map(_SERVICE, requests), map(_STATUS, requests), map(_VERDICT, requests), buckets, strict=True))
    services = set()
    for (service, status, verdict, bucket), times in keys.items():
        name, port = service_port(service)
        stats.proxy_requests[(name, port, status, verdict)] += times
        histogram_of(stats, service).counts[bucket] += times
        services.add(service)
    if len(services) == 1:
        histogram_of(stats, services.pop()).total += sum(map(_SECONDS, requests))
    else:
        for record in requests:
            histogram_of(stats, record[SERVICE]).total += record[SECONDS]


# record length -> how its kind is counted (DNS_LENGTH: any other DNS answer; CONNECTION_LENGTH: TCP and UDP)
DNS_LENGTH, CONNECTION_LENGTH, HTTP_LENGTH = DNS_SECONDS + 1, SECONDS + 1, ROUTE + 1
_COUNTERS: tuple[tuple[int, Callable[..., None]], ...] = (
    (CACHED, count_cached_records), (HTTP_LENGTH, count_requests), (DNS_LENGTH, count_dns), (CONNECTION_LENGTH, count_connections),
)


def histogram_of(stats: DataPathStats, service: Any) -> PlainHistogram:
    key = service_port(service)
    histogram = stats.proxy_durations.get(key)
    if histogram is None:
        histogram = stats.proxy_durations[key] = PlainHistogram(PROXY_DURATION_BUCKETS)
    return histogram
