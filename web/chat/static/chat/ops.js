// The /ops/ dashboard: one server-sent event a second (chat/ops.py), drawn with textContent.
const main = document.getElementById("main");
const status = document.getElementById("ops-status");
const tbody = document.querySelector("#targets tbody");

const fmt = (value, unit = "") => (value === null || value === undefined ? "–" : `${value}${unit}`);

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

function spark(id, values) {
  const line = document.querySelector(`#${id} polyline`);
  const top = Math.max(1, ...values);
  const step = values.length > 1 ? 120 / (values.length - 1) : 0;
  line.setAttribute("points", values.map((v, i) => `${(i * step).toFixed(1)},${(27 - (v / top) * 25).toFixed(1)}`).join(" "));
}

function render(sample) {
  const t = sample.totals;
  const brokers = sample.targets.filter((r) => r.kind === "broker");
  document.getElementById("nodes-up").textContent = `${t.nodes_up} / ${t.nodes}`;
  const brokerState = (b) => (b.state === "down" ? "down" : b.role || "up");
  document.getElementById("broker-state").textContent = brokers.length === 1 ? brokerState(brokers[0])
    : brokers.map((b) => `${b.name}: ${brokerState(b)}`).join(", ") || "–";
  document.getElementById("connections").textContent = t.connections;
  document.getElementById("rooms").textContent = t.rooms;
  document.getElementById("messages-rate").textContent = t.messages_per_s;
  document.getElementById("deliveries-rate").textContent = t.deliveries_per_s;
  document.getElementById("ack-p99").textContent = fmt(t.ack_p99_ms, " ms");
  document.getElementById("archive-lag").textContent = t.archive_lag_events === null ? "–"
    : `${t.archive_lag_events} events · ${t.archive_lag_s} s`;
  spark("messages-spark", sample.history.map((h) => h[0]));
  spark("deliveries-spark", sample.history.map((h) => h[1]));
  const rows = sample.targets.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.name = r.name;
    tr.className = `state-${r.state}`;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = `${r.name} (${r.kind})`;
    tr.append(th);
    cell(tr, r.state, `badge ${r.state}`).title = r.error || "";
    const ws = r.connections ? r.connections.websocket || 0 : 0;
    const polling = r.connections ? r.connections.polling || 0 : 0;
    if (r.kind === "node") {
      cell(tr, r.up ? `${r.connections_total} (${ws} ws, ${polling} polling)` : "–");
      cell(tr, fmt(r.rooms));
      cell(tr, r.up ? r.accepted_per_s : "–");
      cell(tr, r.up ? r.deliveries_per_s : "–");
      cell(tr, fmt(r.ack_p99_ms, " ms"));
      // several broker pairs: each pair's link state
      const link = r.pairs ? Object.entries(r.pairs).map(([p, s]) => `${p} ${s}`).join(", ") : r.link;
      cell(tr, r.up ? `${link || "?"}, heard ${fmt(r.heartbeat_age_s && r.heartbeat_age_s.toFixed(1), " s")} ago` : "–");
    } else if (r.kind === "archiver") {
      cell(tr, "");
      cell(tr, "");
      cell(tr, r.up ? `lag ${fmt(r.archive_lag_events)} events, ${fmt(r.archive_lag_s, " s")}` : "–");
      cell(tr, "");
      cell(tr, "");
      cell(tr, "");
    } else {
      cell(tr, r.up ? `${fmt(r.nodes)} nodes` : "–");
      cell(tr, fmt(r.rooms_in_memory));
      cell(tr, r.up ? `${r.sequenced_per_s} sequenced` : "–");
      cell(tr, "");
      cell(tr, "");
      cell(tr, r.up ? r.role || "primary" : "–");
    }
    return tr;
  });
  tbody.replaceChildren(...rows);
  const down = t.down.length ? `down: ${t.down.join(", ")}` : "all up";
  status.textContent = `live · ${down} · ${new Date(sample.time * 1000).toLocaleTimeString()}`;
  status.className = t.down.length ? "small bad" : "small muted";
}

const source = new EventSource(main.dataset.stream);
source.onmessage = (event) => render(JSON.parse(event.data));
source.onerror = () => { status.textContent = "reconnecting…"; status.className = "small bad"; };
