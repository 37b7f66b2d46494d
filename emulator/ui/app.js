// The emulator's page: a live service map, the flow stream, a pod's details and "why can't A reach B".
// Plain JavaScript, no build step, nothing fetched from outside: every call goes to the API that served
// the page (its own origin). Data reaches the DOM through textContent only, never as markup.
"use strict";

const TOKEN_KEY = "emulator.token";
const KINDS = {
  services: "/api/v1/services",
  endpointslices: "/apis/discovery.k8s.io/v1/endpointslices",
  pods: "/api/v1/pods",
  networkpolicies: "/apis/networking.k8s.io/v1/networkpolicies",
};
const MAX_FLOWS = 500;

const state = {
  objects: { services: new Map(), endpointslices: new Map(), pods: new Map(), networkpolicies: new Map() },
  namespaces: [],
  namespace: "",
  view: "map",
  pod: "",            // ns/name shown in the pod view
  podLoaded: "",      // ns/name@resourceVersion of the pod whose env, events and logs are shown
  flowsPaused: false,
};

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
const keyOf = (obj) => `${obj.metadata.namespace || ""}/${obj.metadata.name}`;

// --- talking to the API ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

let tokenWaiters = [];

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const h = { Accept: "application/json" };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

// Resolves once the user gave a token (after a 401); every caller that met the 401 waits here.
function tokenGiven(message) {
  $("token-form").hidden = false;
  setStatus("waiting for a token");
  $("token-error").textContent = message || "";
  return new Promise((done) => tokenWaiters.push(done));
}

async function request(path, options = {}) {
  for (;;) {
    const sent = sessionStorage.getItem(TOKEN_KEY);
    const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) }, cache: "no-store" });
    if (response.status === 401) {
      if (sessionStorage.getItem(TOKEN_KEY) !== sent) continue; // another token was given meanwhile: try it
      await tokenGiven(sent ? "that token was refused (401): give another" : "");
      continue;
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && body.message) message = body.message;
      } catch (_) { /* not a Status */ }
      throw new ApiError(response.status, message);
    }
    return response;
  }
}

const getJSON = async (path) => (await request(path)).json();
const getText = async (path) => (await request(path)).text();

// The objects of an NDJSON stream (a watch), as they arrive.
async function* ndjson(response, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 1);
        if (line) yield JSON.parse(line);
      }
      if (signal && signal.aborted) return;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// --- live objects, as a reflector does: list, then watch from the list's resourceVersion; a watch that
// ends is resumed from the last version seen; an expired one (ERROR, 410) or a failure lists again -----

const broken = new Set();

async function follow(kind) {
  const path = KINDS[kind];
  let items = null;
  let version = "";
  for (;;) {
    try {
      if (items === null) {
        const list = await getJSON(path);
        items = new Map(list.items.map((o) => [keyOf(o), o]));
        state.objects[kind] = items;
        version = list.metadata.resourceVersion || "";
        changed();
      }
      const response = await request(`${path}?watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(version)}`);
      broken.delete(kind);
      setStatus(broken.size ? `reconnecting: ${[...broken].join(", ")}` : "live");
      for await (const event of ndjson(response)) {
        if (event.type === "ERROR") { // 410 Expired and the like: list again
          items = null;
          break;
        }
        const seen = event.object && event.object.metadata && event.object.metadata.resourceVersion;
        if (seen) version = seen;
        if (event.type === "ADDED" || event.type === "MODIFIED") items.set(keyOf(event.object), event.object);
        else if (event.type === "DELETED") items.delete(keyOf(event.object));
        else continue; // BOOKMARK: only the version moves
        changed();
      }
    } catch (error) {
      items = null;
      broken.add(kind);
      setStatus(`${kind}: ${error.message}`, true);
      await sleep(2000);
    }
    await sleep(300);
  }
}

async function followNamespaces() {
  for (;;) {
    try {
      const list = await getJSON("/api/v1/namespaces");
      const names = list.items.map((o) => o.metadata.name).sort();
      if (names.join() !== state.namespaces.join()) {
        state.namespaces = names;
        fillSelect($("namespace"), [["", "all namespaces"], ...names.map((n) => [n, n])], state.namespace);
        if ($("namespace").value !== state.namespace) { // the namespace shown was deleted
          state.namespace = $("namespace").value;
          changed();
        }
      }
    } catch (_) { /* follow() reports the API's state */ }
    await sleep(5000);
  }
}

let renderPending = false;
function changed() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    renderMap();
    refreshPickers();
    if (state.view === "pod") {
      // a new version of the pod (it started, restarted, ended): its events and logs likely moved too
      const pod = state.objects.pods.get(state.pod);
      if (pod && state.podLoaded !== `${state.pod}@${pod.metadata.resourceVersion}`) loadPod();
      else renderPodStatus();
    }
  });
}

const inNamespace = (obj) => !state.namespace || obj.metadata.namespace === state.namespace;
const sorted = (map) => [...map.values()].sort((a, b) => keyOf(a).localeCompare(keyOf(b)));

// --- label selectors (for drawing only: the verdicts come from the API) ----------------------------

function selects(selector, labels) {
  if (!selector) return false;
  labels = labels || {};
  for (const [k, v] of Object.entries(selector.matchLabels || {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions || []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values || [];
    if (e.operator === "In" && !(has && values.includes(labels[e.key]))) return false;
    if (e.operator === "NotIn" && has && values.includes(labels[e.key])) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

function selectorText(selector) {
  if (!selector) return "";
  const parts = Object.entries(selector.matchLabels || {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector.matchExpressions || []) parts.push(`${e.key} ${e.operator} ${(e.values || []).join(",")}`.trim());
  return parts.length ? parts.join(",") : "all pods";
}

function peerText(peer) {
  if (peer.ipBlock) return `${peer.ipBlock.cidr}${peer.ipBlock.except ? ` except ${peer.ipBlock.except.join(",")}` : ""}`;
  const where = peer.namespaceSelector ? `ns ${selectorText(peer.namespaceSelector)}` : "";
  const who = peer.podSelector ? `pods ${selectorText(peer.podSelector)}` : "";
  return [where, who].filter(Boolean).join(" / ") || "anyone";
}

// What a policy does, in a line or two: which directions it isolates, and what it lets through.
function policyMeaning(policy) {
  const spec = policy.spec || {};
  const types = spec.policyTypes || (spec.egress ? ["Ingress", "Egress"] : ["Ingress"]);
  const lines = [];
  let allowsSomething = false;
  for (const type of types) {
    const rules = (type === "Ingress" ? spec.ingress : spec.egress) || [];
    const side = type === "Ingress" ? "from" : "to";
    if (!rules.length) {
      lines.push(`${type.toLowerCase()}: deny all`);
      continue;
    }
    allowsSomething = true;
    const texts = rules.map((rule) => {
      const peers = rule[side] || [];
      const ports = (rule.ports || []).map((p) => `${p.port ?? "any"}${p.endPort ? `-${p.endPort}` : ""}/${p.protocol || "TCP"}`);
      return `${peers.length ? peers.map(peerText).join(" | ") : "anyone"}${ports.length ? ` on ${ports.join(",")}` : ""}`;
    });
    lines.push(`${type.toLowerCase()} ${side}: ${texts.join("; ")}`);
  }
  return { lines, allowsSomething };
}

// --- the service map ----------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const COLUMNS = { service: 16, pod: 400, policy: 780 };
const WIDTH = { service: 280, pod: 280, policy: 420 };
const ROW = 52;
const BOX = 42;

function svg(tag, attributes, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, x, y, content, cls) {
  const node = svg("text", { x, y, class: cls || "" }, parent);
  node.textContent = content;
  return node;
}

function clip(s, n) { return s.length > n ? `${s.slice(0, n - 1)}…` : s; }

function box(parent, kind, x, y, title, sub, extraClass, onClick) {
  const g = svg("g", { class: `node ${kind} ${extraClass || ""}`, transform: `translate(${x},${y})` }, parent);
  svg("rect", { class: "box", width: WIDTH[kind], height: BOX }, g);
  text(g, 8, 17, clip(title, Math.floor(WIDTH[kind] / 7.2)), `title ${kind}-name`);
  text(g, 8, 33, clip(sub, Math.floor(WIDTH[kind] / 6.4)), "sub");
  const hint = svg("title", {}, g);
  hint.textContent = `${title}\n${sub}`;
  if (onClick) g.addEventListener("click", onClick);
  return g;
}

function edge(parent, x1, y1, x2, y2, cls) {
  const mid = (x1 + x2) / 2;
  svg("path", { class: `edge ${cls}`, d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }, parent);
}

// The endpoints of each service: [{pod: "ns/name", ready}] from its EndpointSlices.
function endpointsByService() {
  const found = new Map();
  for (const slice of state.objects.endpointslices.values()) {
    const service = (slice.metadata.labels || {})["kubernetes.io/service-name"];
    if (!service) continue;
    const key = `${slice.metadata.namespace}/${service}`;
    const list = found.get(key) || [];
    for (const endpoint of slice.endpoints || []) {
      const ref = endpoint.targetRef;
      const ready = !endpoint.conditions || endpoint.conditions.ready !== false;
      list.push({ pod: ref && ref.kind === "Pod" ? `${ref.namespace || slice.metadata.namespace}/${ref.name}` : null,
                  address: (endpoint.addresses || [])[0], ready });
    }
    found.set(key, list);
  }
  return found;
}

function servicePorts(service) {
  return (service.spec.ports || []).map((p) => `${p.port}${p.protocol && p.protocol !== "TCP" ? `/${p.protocol}` : ""}` +
    `${p.targetPort !== undefined && String(p.targetPort) !== String(p.port) ? `→${p.targetPort}` : ""}`).join(", ");
}

function renderMap() {
  const map = $("map");
  map.replaceChildren();
  const services = sorted(state.objects.services).filter(inNamespace);
  const pods = sorted(state.objects.pods).filter(inNamespace);
  const policies = sorted(state.objects.networkpolicies).filter(inNamespace);
  $("map-summary").textContent = `${state.namespace ? `namespace ${state.namespace}` : "all namespaces"}: ` +
    `${services.length} services, ${pods.length} pods, ${policies.length} network policies`;
  const endpoints = endpointsByService();
  const namespaces = [...new Set([...services, ...pods, ...policies].map((o) => o.metadata.namespace))].sort();
  let top = 8;
  for (const ns of namespaces) {
    const mine = (list) => list.filter((o) => o.metadata.namespace === ns);
    const [nsServices, nsPods, nsPolicies] = [mine(services), mine(pods), mine(policies)];
    text(map, COLUMNS.service, top + 14, `namespace ${ns}`, "ns");
    text(map, COLUMNS.service, top + 32, "services", "column");
    text(map, COLUMNS.pod, top + 32, "pods", "column");
    text(map, COLUMNS.policy, top + 32, "network policies", "column");
    top += 42;
    const edges = svg("g", {}, map);
    const podY = new Map();
    nsPods.forEach((pod, i) => {
      const y = top + i * ROW;
      podY.set(keyOf(pod), y + BOX / 2);
      const phase = (pod.status || {}).phase || "Pending";
      const ip = (pod.status || {}).podIP || "no IP";
      box(map, "pod", COLUMNS.pod, y, pod.metadata.name, `${ip} · ${phase}`,
          phase === "Running" ? "" : "notrunning", () => showPod(keyOf(pod)));
    });
    nsServices.forEach((service, i) => {
      const y = top + i * ROW;
      const spec = service.spec || {};
      const address = spec.clusterIP === "None" ? "headless" : (spec.clusterIP || spec.externalName || "");
      box(map, "service", COLUMNS.service, y, service.metadata.name, `${spec.type || "ClusterIP"} ${address} · ${servicePorts(service)}`,
          "", () => askAbout(keyOf(service)));
      for (const endpoint of endpoints.get(keyOf(service)) || []) {
        const to = endpoint.pod && podY.get(endpoint.pod);
        if (to !== undefined && to !== null) {
          edge(edges, COLUMNS.service + WIDTH.service, y + BOX / 2, COLUMNS.pod, to, endpoint.ready ? "ready" : "notready");
        }
      }
    });
    nsPolicies.forEach((policy, i) => {
      const y = top + i * ROW;
      const meaning = policyMeaning(policy);
      const cls = meaning.allowsSomething ? "allow" : "deny";
      box(map, "policy", COLUMNS.policy, y, `${policy.metadata.name}  (pods: ${selectorText((policy.spec || {}).podSelector)})`,
          meaning.lines.join(" · "), cls, null);
      for (const pod of nsPods) {
        if (selects((policy.spec || {}).podSelector || {}, pod.metadata.labels)) {
          edge(edges, COLUMNS.policy, y + BOX / 2, COLUMNS.pod + WIDTH.pod, podY.get(keyOf(pod)), cls);
        }
      }
    });
    top += Math.max(nsServices.length, nsPods.length, nsPolicies.length, 1) * ROW + 16;
  }
  if (!namespaces.length) text(map, 16, 30, "nothing here yet", "sub");
  map.setAttribute("width", COLUMNS.policy + WIDTH.policy + 16);
  map.setAttribute("height", Math.max(top, 60));
}

// --- pickers (pod view, "why" view) --------------------------------------------------------------

function fillSelect(select, options, wanted) {
  const previous = wanted !== undefined ? wanted : select.value;
  const same = select.options.length === options.length &&
    options.every(([value, label], i) => select.options[i].value === value && select.options[i].textContent === label);
  if (!same) {
    select.replaceChildren(...options.map(([value, label]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      return option;
    }));
  }
  if (options.some(([value]) => value === previous)) select.value = previous;
}

function refreshPickers() {
  const pods = sorted(state.objects.pods).filter((p) => inNamespace(p) || keyOf(p) === state.pod).map((p) => [keyOf(p), keyOf(p)]);
  fillSelect($("pod-pick"), [["", "choose a pod"], ...pods], state.pod);
  const allPods = sorted(state.objects.pods).filter((p) => (p.status || {}).podIP).map((p) => [keyOf(p), keyOf(p)]);
  fillSelect($("why-source"), [...allPods, ["127.0.0.1", "the host: 127.0.0.1, no pod"]]);
  const kind = $("why-kind").value;
  const destinations = kind === "service"
    ? sorted(state.objects.services).filter((s) => (s.spec || {}).type !== "ExternalName").map((s) => [keyOf(s), keyOf(s)])
    : allPods;
  fillSelect($("why-destination"), destinations);
  refreshPorts();
}

function refreshPorts() {
  const kind = $("why-kind").value;
  const key = $("why-destination").value;
  let options = [];
  if (kind === "service") {
    const service = state.objects.services.get(key);
    options = ((service && service.spec.ports) || []).map((p) =>
      [p.name || "", `${p.port}/${p.protocol || "TCP"}${p.name ? ` (${p.name})` : ""} → ${p.targetPort ?? p.port}`]);
  } else {
    const pod = state.objects.pods.get(key);
    for (const c of (pod && pod.spec.containers) || []) {
      for (const p of c.ports || []) options.push([`${p.containerPort}/${p.protocol || "TCP"}`, `${p.containerPort}/${p.protocol || "TCP"}${p.name ? ` (${p.name})` : ""}`]);
    }
    for (const port of [80, 443, 8080]) if (!options.some(([v]) => v === `${port}/TCP`)) options.push([`${port}/TCP`, `${port}/TCP`]);
  }
  fillSelect($("why-port"), options);
}

// --- "why can't A reach B" -----------------------------------------------------------------------

function askAbout(serviceKey) {
  $("why-kind").value = "service";
  refreshPickers();
  $("why-destination").value = serviceKey;
  refreshPorts();
  showView("why");
}

// The pods behind a service port, with the port number on them (from the EndpointSlices).
function serviceBackends(serviceKey, portName) {
  const [ns, name] = serviceKey.split("/");
  const backends = [];
  for (const slice of state.objects.endpointslices.values()) {
    if (slice.metadata.namespace !== ns || (slice.metadata.labels || {})["kubernetes.io/service-name"] !== name) continue;
    const port = (slice.ports || []).find((p) => (p.name || "") === portName);
    if (!port) continue;
    for (const endpoint of slice.endpoints || []) {
      const ref = endpoint.targetRef;
      backends.push({
        to: ref && ref.kind === "Pod" ? `${ref.namespace || ns}/${ref.name}` : (endpoint.addresses || [])[0],
        port: port.port, protocol: port.protocol || "TCP",
        ready: !endpoint.conditions || endpoint.conditions.ready !== false,
      });
    }
  }
  return backends;
}

async function checkReach(event) {
  if (event) event.preventDefault();
  const result = $("why-result");
  result.replaceChildren();
  const source = $("why-source").value;
  const kind = $("why-kind").value;
  const destination = $("why-destination").value;
  const port = $("why-port").value;
  if (!source || !destination) {
    result.append(paragraph("choose a source pod and a destination", "note"));
    return;
  }
  let targets;
  if (kind === "service") {
    targets = serviceBackends(destination, port);
    const service = state.objects.services.get(destination);
    const servicePort = ((service && service.spec.ports) || []).find((p) => (p.name || "") === port);
    const label = servicePort ? `${destination}:${servicePort.port}` : destination;
    if (!targets.length) {
      result.append(paragraph(`${label} has no endpoints: no pod backs it, so a connection is refused before any policy applies`, "verdict denied"));
      return;
    }
    result.append(paragraph(`${source} → service ${label}: ${targets.length} endpoint(s), each checked on its targetPort`, "note"));
  } else {
    const [number, protocol] = port.split("/");
    targets = [{ to: destination, port: number, protocol, ready: true }];
  }
  for (const target of targets) {
    const query = new URLSearchParams({ from: source, to: target.to, port: String(target.port), protocol: target.protocol });
    const panel = document.createElement("div");
    panel.className = "check";
    result.append(panel);
    try {
      const answer = await getJSON(`/emulator/v1/networkpolicy/check?${query}`);
      panel.append(paragraph(`${answer.allowed ? "allowed" : "denied"}: ${source} → ${target.to} port ${answer.port}/${answer.protocol}` +
        `${target.ready ? "" : " (endpoint not ready)"}`, `verdict ${answer.allowed ? "allowed" : "denied"}`));
      if (answer.policies.length) {
        panel.append(paragraph(`${answer.allowed ? "allowed by" : `denied (${answer.deniedBy.join(" and ")}) by`}: ${answer.policies.join(", ")}`, "policies"));
      } else if (!answer.allowed) {
        panel.append(paragraph(`denied (${answer.deniedBy.join(" and ")})`, "policies"));
      }
      const reasons = document.createElement("ul");
      for (const reason of answer.reasons) {
        const item = document.createElement("li");
        item.textContent = reason;
        reasons.append(item);
      }
      panel.append(reasons);
      if (answer.enforced === false) panel.append(paragraph("the proxy does not enforce policies in this emulator (--no-network-policies?)", "note"));
    } catch (error) {
      panel.append(paragraph(`${target.to}: ${error.message}`, "error"));
    }
  }
}

function paragraph(content, cls) {
  const p = document.createElement("p");
  p.textContent = content;
  if (cls) p.className = cls;
  return p;
}

// --- a pod's details ------------------------------------------------------------------------------

function showPod(key) {
  state.pod = key;
  showView("pod");
  loadPod();
}

function row(cells, cls) {
  const tr = document.createElement("tr");
  if (cls) tr.className = cls;
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell === undefined || cell === null ? "" : String(cell);
    tr.append(td);
  }
  return tr;
}

function containerState(status) {
  const s = (status && status.state) || {};
  if (s.running) return `running since ${s.running.startedAt || "?"}`;
  if (s.waiting) return `waiting: ${s.waiting.reason || ""}`;
  if (s.terminated) return `terminated: ${s.terminated.reason || ""} (exit ${s.terminated.exitCode})`;
  return "";
}

function renderPodStatus() {
  const pod = state.objects.pods.get(state.pod);
  const dl = $("pod-status");
  dl.replaceChildren();
  $("pod-containers").replaceChildren();
  if (!pod) {
    dl.append(paragraph(state.pod ? `${state.pod} is gone` : "choose a pod", "note"));
    return;
  }
  const status = pod.status || {};
  const conditions = (status.conditions || []).map((c) => `${c.type}=${c.status}`).join(", ");
  const facts = [
    ["pod", keyOf(pod)], ["phase", status.phase || "Pending"], ["pod IP", status.podIP || "none"],
    ["node", pod.spec.nodeName || "not bound"], ["conditions", conditions || "none"],
    ["labels", Object.entries(pod.metadata.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "none"],
    ["created", pod.metadata.creationTimestamp || ""],
  ];
  if (status.message) facts.push(["message", status.message]);
  for (const [name, value] of facts) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  }
  const statuses = new Map((status.containerStatuses || []).map((s) => [s.name, s]));
  for (const c of pod.spec.containers || []) {
    const s = statuses.get(c.name);
    const ports = (c.ports || []).map((p) => `${p.containerPort}/${p.protocol || "TCP"}${p.name ? ` (${p.name})` : ""}`).join(", ");
    $("pod-containers").append(row([c.name, c.image || "", ports, s ? containerState(s) : "not reported: no kubelet runs it",
      s ? String(s.ready) : "", s ? s.restartCount : ""]));
  }
  const names = (pod.spec.containers || []).map((c) => [c.name, c.name]);
  fillSelect($("pod-env-container"), names);
}

let podLoads = 0;

// Fetches the pod's environment, events and logs, then shows them — unless another load began meanwhile.
async function loadPod() {
  renderPodStatus();
  const pod = state.objects.pods.get(state.pod);
  state.podLoaded = pod ? `${state.pod}@${pod.metadata.resourceVersion}` : "";
  const load = ++podLoads;
  if (!pod) {
    showPodData([], "", [], "", "");
    return;
  }
  const ns = encodeURIComponent(pod.metadata.namespace);
  const name = encodeURIComponent(pod.metadata.name);
  const container = $("pod-env-container").value;
  const [[env, envNote], [events, eventsNote], logs] = await Promise.all([
    fetchEnv(ns, name, container), fetchEvents(ns, pod.metadata.name), fetchLogs(ns, name, container),
  ]);
  if (load === podLoads) showPodData(env, envNote, events, eventsNote, logs);
}

function showPodData(env, envNote, events, eventsNote, logs) {
  $("pod-env").replaceChildren(...env.map(([k, v]) => row([k, v])));
  $("pod-env-note").textContent = envNote;
  $("pod-events").replaceChildren(...events.map((e) => row([e.lastTimestamp || e.eventTime || "", e.type, e.reason,
    (e.source && e.source.component) || e.reportingComponent || "", e.message], e.type === "Warning" ? "error" : "")));
  $("pod-events-note").textContent = eventsNote;
  $("pod-logs").textContent = logs;
}

async function fetchEnv(ns, name, container) {
  try {
    const env = await getJSON(`/emulator/v1/namespaces/${ns}/pods/${name}/env?container=${encodeURIComponent(container)}`);
    const entries = Object.entries(env.env || {});
    return [entries, entries.length ? "" : "no variables"];
  } catch (error) {
    return [[], `environment not available: ${error.message}`];
  }
}

async function fetchEvents(ns, podName) {
  try {
    const selector = encodeURIComponent(`involvedObject.kind=Pod,involvedObject.name=${podName}`);
    const events = await getJSON(`/api/v1/namespaces/${ns}/events?fieldSelector=${selector}`);
    const when = (e) => String(e.lastTimestamp || e.eventTime || "");
    const items = (events.items || []).sort((a, b) => when(a).localeCompare(when(b)));
    return [items, items.length ? "" : "no events"];
  } catch (error) {
    return [[], `events not available: ${error.message}`];
  }
}

async function fetchLogs(ns, name, container) {
  try {
    const text = await getText(`/api/v1/namespaces/${ns}/pods/${name}/log?tailLines=200&container=${encodeURIComponent(container)}`);
    return text || "(no lines: the pod wrote none, or the kubelet does not run it — start serve with --kubelet to run pods)";
  } catch (error) {
    return error.status === 503 || error.status === 404
      ? `logs not available (${error.status}): ${error.message} — the kubelet runs pods only with serve --kubelet`
      : `logs not available: ${error.message}`;
  }
}

// --- the flow stream -------------------------------------------------------------------------------

let flowAbort = null;
let flowFilter = null; // the filters of the rows shown
let lastFlowId = 0;    // the newest flow seen with them: a new stream resumes after it (?since=)

function flowQuery() {
  const query = new URLSearchParams({ watch: "1", limit: "200" });
  if (state.namespace) query.set("namespace", state.namespace);
  const fields = { verdict: "flow-verdict", kind: "flow-kind", pod: "flow-pod", service: "flow-service" };
  for (const [param, id] of Object.entries(fields)) {
    const value = $(id).value.trim();
    if (value) query.set(param, value);
  }
  return query;
}

function sourceText(side) {
  return side ? side.pod || side.ip || "" : "";
}

// A service's address and port, then the pod (or endpoint) that took the connection.
function destinationText(side) {
  if (!side) return "";
  const port = side.port ? `:${side.port}` : "";
  if (side.service) {
    const backend = side.pod || side.endpoint;
    return `${side.service}${port}${backend ? ` → ${backend}` : ""}`;
  }
  return `${side.pod || side.ip || ""}${port}`;
}

function addFlow(flow) {
  if (typeof flow.id === "number") {
    if (flow.id <= lastFlowId) return; // seen already (a stream that started again)
    lastFlowId = flow.id;
  }
  if (state.flowsPaused) return;
  const tbody = $("flows");
  const verdict = document.createElement("span");
  verdict.className = `verdict-${flow.verdict}`;
  verdict.textContent = flow.verdict;
  let what = flow.summary || "";
  if (flow.policy && flow.policy.verdict === "denied") { // the deciding policies, unless the summary names them
    const policies = flow.policy.policies || [];
    if (!policies.length || !policies.every((p) => what.includes(p))) what += ` — denied by ${policies.join(", ") || "policy"}`;
    if (flow.policy.reason && !what.includes(flow.policy.reason)) what += `: ${flow.policy.reason}`;
  }
  const time = (flow.time || "").replace(/^.*T/, "").replace(/Z$/, "");
  const tr = row([time, flow.kind, verdict, sourceText(flow.source), destinationText(flow.destination), what], flow.verdict);
  tr.lastChild.className = "what";
  tr.dataset.id = flow.id;
  tbody.prepend(tr);
  while (tbody.children.length > MAX_FLOWS) tbody.lastChild.remove();
}

async function followFlows() {
  stopFlows();
  const controller = new AbortController();
  flowAbort = controller;
  const note = $("flow-note");
  const filter = flowQuery().toString();
  if (filter !== flowFilter) { // other filters: other rows
    flowFilter = filter;
    lastFlowId = 0;
    $("flows").replaceChildren();
  }
  while (!controller.signal.aborted) {
    try {
      const query = flowQuery();
      if (lastFlowId) query.set("since", String(lastFlowId));
      const response = await request(`/emulator/v1/flows?${query}`, { signal: controller.signal });
      note.textContent = "live";
      for await (const message of ndjson(response, controller.signal)) {
        if (message.type === "FLOW" && message.flow) addFlow(message.flow);
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error.status === 404) {
        note.textContent = "flows not available: this emulator does not record flows (/emulator/v1/flows is 404)";
        return;
      }
      note.textContent = `flows: ${error.message}; retrying`;
      await sleep(2000);
    }
    if (!controller.signal.aborted) {
      note.textContent = "reconnecting…";
      await sleep(500);
    }
  }
}

function stopFlows() {
  if (flowAbort) flowAbort.abort();
  flowAbort = null;
}

// --- views ----------------------------------------------------------------------------------------

function showView(view) {
  state.view = view;
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.view === view);
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  // A browser keeps six connections per host: the four watches stay, the flow stream only while shown.
  if (view === "flows") { if (!flowAbort) followFlows(); } else stopFlows();
  if (view === "pod") renderPodStatus();
  history.replaceState(null, "", `#${view}${view === "pod" && state.pod ? `/${state.pod}` : ""}`);
}

function start() {
  for (const button of document.querySelectorAll("#tabs button")) button.addEventListener("click", () => showView(button.dataset.view));
  $("namespace").addEventListener("change", () => {
    state.namespace = $("namespace").value;
    changed();
    if (state.view === "flows") followFlows();
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    $("token-form").hidden = true;
    const waiting = tokenWaiters;
    tokenWaiters = [];
    for (const done of waiting) done();
  });
  $("flow-filters").addEventListener("submit", (event) => { event.preventDefault(); followFlows(); });
  $("flow-pause").addEventListener("click", () => {
    state.flowsPaused = !state.flowsPaused;
    $("flow-pause").textContent = state.flowsPaused ? "Resume" : "Pause";
  });
  $("flow-clear").addEventListener("click", () => $("flows").replaceChildren());
  $("pod-pick").addEventListener("change", () => showPod($("pod-pick").value));
  $("pod-refresh").addEventListener("click", () => loadPod());
  $("pod-env-container").addEventListener("change", () => loadPod());
  $("why-kind").addEventListener("change", refreshPickers);
  $("why-destination").addEventListener("change", refreshPorts);
  $("why-form").addEventListener("submit", checkReach);

  const [view, ...rest] = location.hash.replace(/^#/, "").split("/");
  if (rest.length === 2) state.pod = rest.join("/");
  for (const kind of Object.keys(KINDS)) follow(kind);
  followNamespaces();
  showView(["map", "flows", "pod", "why"].includes(view) ? view : "map");
}

document.addEventListener("DOMContentLoaded", start);
