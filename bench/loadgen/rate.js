/**
 * The load generator's `rate` mode: chat messages at a fixed rate, every delivery checked
 * (client contract: PROTOCOL.md).
 *
 *   node bench/loadgen/loadgen.js rate --urls http://127.0.0.1:PORT1,http://127.0.0.1:PORT2 \
 *       --clients 30 --rooms 1 --rate 100 --duration 10 --warmup 2 --out run.json
 *
 * Every client connects over websocket only and joins room (i % rooms) as nick
 * "c<i>"; client i uses url floor(i / rooms) % urls, so every room has members
 * on every node whenever it has at least as many members as there are urls
 * (with one room this is plain round-robin).  Then message k of the run is
 * due at start + k/rate seconds (absolute schedule: a late timer sends what is
 * due at once, it never lowers the rate) and is sent by client k % senders with
 * a unique cid.  Every client records every `message` event.  The first
 * --warmup seconds are not measured; the window is the next --duration seconds;
 * after it the run drains for up to --drain seconds.
 *
 * Figures (window = messages scheduled inside the measured window):
 *   sent, acked (ok:true), ack_errors by code, expected = acked x room members,
 *   delivered (first receipt per client), lost = expected - delivered after the
 *   drain, duplicated (a seq seen twice by one client), out_of_order (a seq
 *   below one already seen, first time seen), seq_gaps (a jump > 1, which
 *   precedes either a loss or a late message), latency = receive - send time
 *   (performance.now(), one process clock), ack latency, deliveries/s counted
 *   by receive time inside the window, cross-node fraction (deliveries whose
 *   receiver is on another url than the author), and latency CDFs (quantiles)
 *   for plots.  Integrity counters cover the whole run.
 *
 * Idle mode (--idle-hold S > 0): connect and join as above, print
 * "loadgen: idle holding <n>", keep the connections open S seconds without
 * sending, print "loadgen: idle done", disconnect and report; a supervising
 * script reads the servers' memory while they hold.
 *
 * Exit status: 0 clean; 1 the run completed but integrity was violated (loss,
 * duplicates, reorder, ack errors or unresolved acks); 2 fatal (a connection
 * failed or dropped, a join was refused, the hard deadline passed, bad flags).
 * Lines "loadgen: window start" and "loadgen: window end" on stdout mark the
 * measured window for a supervising script (scripts/bench, scripts/bench sanity).
 */
"use strict";

const fs = require("fs");
const crypto = require("crypto");
const { performance, monitorEventLoopDelay } = require("perf_hooks");

const flags = require("./flags");

const FLAGS = {
  urls: { kind: "list", help: "comma-separated node URLs (required)" },
  // up to 10,000 (the idle workload at 10,000): one socket each, under 20,000 open files per process
  clients: { kind: "int", def: 30, min: 1, max: 10000 },
  rooms: { kind: "int", def: 1, min: 1, max: 5000 },
  senders: { kind: "int", def: 0, min: 0, max: 5000, help: "clients that send (0 = all)" },
  rate: { kind: "num", def: 100, min: 0.1, max: 20000, help: "total messages/s" },
  duration: { kind: "num", def: 10, min: 0.1, max: 3600, help: "measured seconds" },
  warmup: { kind: "num", def: 2, min: 0, max: 600, help: "unmeasured seconds first" },
  drain: { kind: "num", def: 5, min: 0, max: 600, help: "seconds to wait for stragglers" },
  "ack-timeout-ms": { kind: "int", def: 10000, min: 100, max: 120000 },
  "connect-timeout-ms": { kind: "int", def: 10000, min: 100, max: 120000 },
  "connect-concurrency": { kind: "int", def: 50, min: 1, max: 5000 },
  deadline: { kind: "num", def: 0, min: 0, max: 7200, help: "hard overall limit, s (0 = derived)" },
  "room-prefix": { kind: "str", def: "" },
  "text-bytes": { kind: "int", def: 0, min: 0, max: 1900, help: "padding added to each text" },
  progress: { kind: "num", def: 1, min: 0, max: 60, help: "seconds between progress lines (0 = none)" },
  "idle-hold": { kind: "num", def: 0, min: 0, max: 3600, help: "idle mode: hold the joined connections this long, send nothing" },
  out: { kind: "str", def: "" },
};
// Past this many deliveries exact percentiles stop being cheap; split the run.
const MAX_TRACKED_DELIVERIES = 20_000_000;
const ANOMALY_EXAMPLES = 20;
// The loop-delay histogram times a timer of this period and includes the period
// itself; it is subtracted so the figure is the lag beyond it.
const LOOP_DELAY_RESOLUTION_MS = 5;
const EXIT_OK = 0, EXIT_INTEGRITY = 1, EXIT_FATAL = 2;
// Quantiles (percent) kept for latency CDF plots: dense in the body, finer in the tail.
const CDF_POINTS = [0, 0.1, 0.5, 1, ...Array.from({ length: 48 }, (_, j) => 2 + 2 * j), 97, 98, 99,
                    99.5, 99.9, 99.95, 99.99, 100];

function usage(message, code = EXIT_FATAL) {
  process.stderr.write(`loadgen: ${message}\nflags of rate:\n${flags.describe(FLAGS)}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = flags.parse(FLAGS, argv, usage,
    () => usage("fixed-rate messages (see the header of bench/loadgen/rate.js)", EXIT_OK));
  if (!opts.urls || !opts.urls.length) usage("--urls is required");
  if (!opts.senders || opts.senders > opts.clients) opts.senders = opts.clients;
  if (opts.rooms > opts.clients) usage("--rooms must not exceed --clients");
  if (!opts["room-prefix"]) opts["room-prefix"] = "bench-" + crypto.randomBytes(4).toString("hex");
  if (!/^[A-Za-z0-9_-]{1,50}$/.test(opts["room-prefix"])) usage("--room-prefix: 1-50 of A-Z a-z 0-9 _ -");
  const maxMembers = Math.ceil(opts.clients / opts.rooms);
  const totalMessages = Math.ceil(opts.rate * (opts.warmup + opts.duration));
  if (totalMessages * maxMembers > MAX_TRACKED_DELIVERIES) {
    usage(`rate x time x members = ${totalMessages * maxMembers} deliveries is over ${MAX_TRACKED_DELIVERIES}`);
  }
  if (!opts.deadline) {
    opts.deadline = (opts["connect-timeout-ms"] / 1000) * Math.ceil(opts.clients / opts["connect-concurrency"]) * 2
      + opts.warmup + opts.duration + Math.max(opts.drain, opts["ack-timeout-ms"] / 1000) + opts["idle-hold"] + 15;
  }
  return opts;
}

function loadIo() {
  try { return require("socket.io-client").io; } catch (e) { if (e.code !== "MODULE_NOT_FOUND") throw e; }
  process.stderr.write("loadgen: socket.io-client is missing; run scripts/setup --dev (npm ci in bench/loadgen/)\n");
  process.exit(EXIT_FATAL);
}

function log(line) { process.stdout.write(`loadgen: ${line}\n`); }

function percentiles(values, ps) {
  const out = { count: values.length };
  if (!values.length) { for (const p of ps) out[`p${p}`] = null; out.max = null; out.mean = null; return out; }
  const sorted = Float64Array.from(values).sort();
  for (const p of ps) out[`p${p}`] = round3(sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]);
  out.max = round3(sorted[sorted.length - 1]);
  let sum = 0; for (const v of sorted) sum += v;
  out.mean = round3(sum / sorted.length);
  return out;
}
function round3(x) { return Math.round(x * 1000) / 1000; }

/** [[percent, value], ...] at CDF_POINTS, for plotting a latency distribution. */
function cdf(values) {
  if (!values.length) return [];
  const sorted = Float64Array.from(values).sort();
  return CDF_POINTS.map((p) => [p, round3(sorted[Math.min(sorted.length - 1,
    Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))])]);
}

/** Counters of one class of messages (warmup or window). */
function counters() {
  return { sent: 0, acked: 0, ack_errors: {}, ack_unresolved: 0, expected: 0, delivered: 0, lost: 0,
           delivered_unacked: 0 };
}

class Run {
  constructor(opts, io) {
    this.opts = opts;
    this.io = io;
    this.runId = crypto.randomBytes(4).toString("hex");
    this.clients = [];
    this.members = new Array(opts.rooms).fill(0);
    this.messages = new Map();        // cid -> sent message record
    this.order = [];                  // records in send order
    this.window = counters();
    this.warmup = counters();
    this.integrity = { events: 0, duplicated: 0, out_of_order: 0, seq_gaps: 0, seq_mismatch: 0,
                       foreign: 0, disconnects: 0, examples: [] };
    this.latency = opts.urls.map(() => []);   // window deliveries, by receiving node
    this.ackLatency = [];
    this.sendLag = [];
    this.deliveredInWindow = 0;
    this.measuredDeliveries = 0;
    this.crossNodeDeliveries = 0;
    this.nextK = 0;
    this.totalK = Math.ceil(opts.rate * (opts.warmup + opts.duration));
    this.warmupK = Math.ceil(opts.rate * opts.warmup);
    this.closing = false;
    this.finished = false;
    this.status = "running";
    this.fatal = null;
    this.timings = {};
    this.cpu = {};
    this.loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  }

  anomaly(kind, detail) {
    if (this.integrity.examples.length < ANOMALY_EXAMPLES) {
      this.integrity.examples.push({ kind, t_ms: round3(performance.now() - (this.t0 || 0)), ...detail });
    }
  }

  // connections

  async connectAll() {
    const { opts } = this;
    const pending = [];
    for (let i = 0; i < opts.clients; i++) {
      const room = `${opts["room-prefix"]}-${i % opts.rooms}`;
      this.members[i % opts.rooms] += 1;
      pending.push({ i, room, urlIndex: Math.floor(i / opts.rooms) % opts.urls.length });
    }
    const workers = [];
    for (let w = 0; w < Math.min(opts["connect-concurrency"], pending.length); w++) {
      workers.push((async () => {
        while (pending.length) await this.connectOne(pending.shift());
      })());
    }
    await Promise.all(workers);
  }

  connectOne({ i, room, urlIndex }) {
    const { opts } = this;
    const url = opts.urls[urlIndex];
    const c = { i, room, urlIndex, url, nick: `c${i}`, last: 0, seqs: new Set(), socket: null };
    this.clients.push(c);
    return new Promise((resolve, reject) => {
      const socket = c.socket = this.io(url, {
        transports: ["websocket"], reconnection: false, forceNew: true,
        timeout: opts["connect-timeout-ms"],
      });
      socket.on("message", (m) => this.onMessage(c, m));
      socket.on("disconnect", (reason) => {
        if (this.closing) return;
        this.integrity.disconnects += 1;
        this.anomaly("disconnect", { client: i, url, reason });
        this.fail(`client c${i} (${url}) disconnected: ${reason}`);
        reject(new Error(`client c${i} (${url}) disconnected while joining: ${reason}`));  // no-op once joined
      });
      socket.once("connect_error", (err) => reject(new Error(`client c${i} cannot connect to ${url}: ${err.message}`)));
      socket.once("connect", () => {
        socket.timeout(opts["ack-timeout-ms"]).emit("join", { room, nick: c.nick }, (err, ack) => {
          if (err) return reject(new Error(`client c${i} join timed out on ${url}`));
          if (!ack || ack.ok !== true) return reject(new Error(`client c${i} join refused on ${url}: ${JSON.stringify(ack)}`));
          c.last = ack.seq;       // a fresh room: 0; the first message must be last + 1
          resolve();
        });
      });
    });
  }

  // receiving

  onMessage(c, m) {
    const t = performance.now();
    const ig = this.integrity;
    ig.events += 1;
    if (!m || m.room !== c.room || typeof m.seq !== "number") { ig.foreign += 1; return; }
    const seq = m.seq;
    const seen = c.seqs.has(seq);
    if (seen) {
      ig.duplicated += 1;
      this.anomaly("duplicate", { client: c.i, url: c.url, seq, last: c.last, cid: m.cid, author_node: m.node });
    } else if (seq < c.last) {
      ig.out_of_order += 1;
      this.anomaly("out_of_order", { client: c.i, url: c.url, seq, last: c.last, cid: m.cid, author_node: m.node });
    } else if (seq > c.last + 1) {
      ig.seq_gaps += 1;
      this.anomaly("seq_gap", { client: c.i, url: c.url, seq, last: c.last, cid: m.cid, author_node: m.node });
    }
    if (seq > c.last) c.last = seq;
    if (seen) return;
    c.seqs.add(seq);
    const rec = m.cid !== undefined ? this.messages.get(m.cid) : undefined;
    if (!rec) { ig.foreign += 1; return; }
    if (rec.seq === null) rec.seq = seq;
    else if (rec.seq !== seq) {
      ig.seq_mismatch += 1;
      this.anomaly("seq_mismatch", { client: c.i, url: c.url, cid: m.cid, seq, first_seq: rec.seq });
    }
    rec.receivers += 1;
    if (t >= this.tWindowStart && t < this.tWindowEnd) this.deliveredInWindow += 1;
    if (rec.measured) {
      this.latency[c.urlIndex].push(t - rec.tSend);
      this.measuredDeliveries += 1;
      if (rec.urlIndex !== c.urlIndex) this.crossNodeDeliveries += 1;
    }
  }

  // sending

  schedule() {
    const { opts } = this;
    return new Promise((resolve) => {
      const periodMs = 1000 / opts.rate;
      const tick = () => {
        if (this.finished) return resolve();
        const now = performance.now();
        while (this.nextK < this.totalK && this.t0 + this.nextK * periodMs <= now) {
          this.send(this.nextK, this.t0 + this.nextK * periodMs);
          this.nextK += 1;
        }
        if (this.nextK >= this.totalK) return resolve();
        setTimeout(tick, Math.max(0, this.t0 + this.nextK * periodMs - performance.now()));
      };
      setTimeout(tick, Math.max(0, this.t0 - performance.now()));
    });
  }

  send(k, tDue) {
    const { opts } = this;
    const c = this.clients[k % opts.senders];
    const measured = k >= this.warmupK;
    const cid = `${this.runId}-${c.i}-${k}`;
    const tSend = performance.now();
    const rec = { cid, k, client: c.i, urlIndex: c.urlIndex, room: c.room, members: this.members[c.i % opts.rooms], measured,
                  tSend, seq: null, ok: null, receivers: 0 };
    this.messages.set(cid, rec);
    this.order.push(rec);
    const bucket = measured ? this.window : this.warmup;
    bucket.sent += 1;
    if (measured) this.sendLag.push(tSend - tDue);
    let text = `lg ${cid} t=${tSend.toFixed(3)}`;
    if (opts["text-bytes"]) text += " " + "x".repeat(opts["text-bytes"]);
    c.socket.timeout(opts["ack-timeout-ms"]).emit("message", { room: c.room, text, cid }, (err, ack) => {
      const t = performance.now();
      let code = null;
      if (err) code = "timeout";
      else if (!ack || typeof ack !== "object") code = "bad_ack";
      else if (ack.ok !== true) code = String(ack.error || "unknown");
      if (code) {
        rec.ok = false;
        bucket.ack_errors[code] = (bucket.ack_errors[code] || 0) + 1;
        return;
      }
      rec.ok = true;
      if (rec.seq === null) rec.seq = ack.seq;
      else if (rec.seq !== ack.seq) {
        this.integrity.seq_mismatch += 1;
        this.anomaly("seq_mismatch", { cid, ack_seq: ack.seq, delivered_seq: rec.seq });
      }
      bucket.acked += 1;
      if (measured) this.ackLatency.push(t - tSend);
    });
  }

  // phases

  async drain() {
    const deadline = performance.now() + this.opts.drain * 1000;
    const done = () => this.order.every((r) => r.ok === false || (r.ok === true && r.receivers >= r.members));
    while (!this.finished && performance.now() < deadline && !done()) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  progress() {
    if (!this.opts.progress) return null;
    return setInterval(() => {
      const w = this.window, u = this.warmup;
      const sent = w.sent + u.sent, acked = w.acked + u.acked;
      const errors = Object.values(w.ack_errors).concat(Object.values(u.ack_errors)).reduce((a, b) => a + b, 0);
      let delivered = 0; for (const r of this.order) delivered += r.receivers;
      const phase = this.t0 === undefined ? "connect" : performance.now() < this.tWindowStart ? "warmup"
        : performance.now() < this.tWindowEnd ? "window" : "drain";
      log(`${phase} t=${((performance.now() - (this.t0 || performance.now())) / 1000).toFixed(1)}s sent=${sent} ` +
          `acked=${acked} ack_errors=${errors} inflight=${sent - acked - errors} delivered=${delivered}`);
    }, this.opts.progress * 1000);
  }

  fail(why) {
    if (!this.fatal) this.fatal = why;
    log(`FAILURE: ${why}`);
  }

  // the report

  /** Count expected/delivered/lost once, at the end of the run. */
  tally() {
    if (this.tallied) return;
    this.tallied = true;
    for (const rec of this.order) {
      const bucket = rec.measured ? this.window : this.warmup;
      const members = rec.members;
      if (rec.ok === true) {
        bucket.expected += members;
        bucket.delivered += rec.receivers;
        bucket.lost += Math.max(0, members - rec.receivers);
        if (rec.receivers < members) this.anomaly("lost", { cid: rec.cid, seq: rec.seq, author: rec.client,
          received_by: rec.receivers, members });
      } else {
        bucket.delivered_unacked += rec.receivers;
        if (rec.ok === null) bucket.ack_unresolved += 1;
      }
    }
  }

  report() {
    const { opts } = this;
    const byNode = {};
    opts.urls.forEach((url, j) => { byNode[url] = { clients: this.clients.filter((c) => c.urlIndex === j).length,
                                                  latency_ms: percentiles(this.latency[j], [50, 99]) }; });
    const all = [].concat(...this.latency);
    const w = this.window;
    const cpuWindow = this.cpu.end && this.cpu.start ? process.cpuUsage(this.cpu.start) : null;
    const cpuAll = process.cpuUsage(this.cpu.begin);
    const windowS = this.timings.window_s || opts.duration;
    const ld = this.loopDelay;
    const lag = (ns) => round3(Math.max(0, ns / 1e6 - LOOP_DELAY_RESOLUTION_MS));
    return {
      tool: "bench/loadgen rate",
      status: this.status,
      fatal: this.fatal,
      run_id: this.runId,
      params: { urls: opts.urls, clients: opts.clients, rooms: opts.rooms, senders: opts.senders,
                members_per_room: this.members, rate: opts.rate, duration_s: opts.duration,
                warmup_s: opts.warmup, drain_s: opts.drain, ack_timeout_ms: opts["ack-timeout-ms"],
                text_bytes: opts["text-bytes"], room_prefix: opts["room-prefix"], deadline_s: opts.deadline },
      window: {
        ...w,
        deliveries_in_window: this.deliveredInWindow,
        deliveries_per_s: round3(this.deliveredInWindow / windowS),
        offered_deliveries_per_s: round3(opts.rate * opts.clients / opts.rooms),
        acked_per_s: round3(w.acked / windowS),
        latency_ms: percentiles(all, [50, 90, 99]),
        ack_latency_ms: percentiles(this.ackLatency, [50, 90, 99]),
        cross_node_fraction: this.measuredDeliveries ? round3(this.crossNodeDeliveries / this.measuredDeliveries) : null,
        latency_cdf_ms: cdf(all),
        ack_latency_cdf_ms: cdf(this.ackLatency),
        send_lag_ms: percentiles(this.sendLag, [50, 99]),
        by_receiving_node: byNode,
      },
      warmup: this.warmup,
      integrity: this.integrity,
      loadgen: {
        cpu_window_s: cpuWindow ? round3((cpuWindow.user + cpuWindow.system) / 1e6) : null,
        cpu_window_pct_of_core: cpuWindow ? round3((cpuWindow.user + cpuWindow.system) / 1e4 / windowS) : null,
        cpu_total_s: round3((cpuAll.user + cpuAll.system) / 1e6),
        event_loop_utilization_window: this.elu ? round3(this.elu.utilization) : null,
        event_loop_delay_ms: ld.count ? { p50: lag(ld.percentile(50)), p99: lag(ld.percentile(99)), max: lag(ld.max) }
          : null,
        max_rss_mb: round3(process.resourceUsage().maxRSS / 1024),
      },
      timings: this.timings,
      definitions: {
        window: "messages scheduled in [warmup, warmup+duration); deliveries_in_window counts receipts in that time span",
        expected: "acked (ok:true) messages x members of their room (the author receives its own)",
        lost: "expected deliveries not received by the end of the drain",
        duplicated: "a seq received again by the same client",
        out_of_order: "a seq received for the first time after a higher one (duplicates are counted apart)",
        seq_gaps: "a seq more than 1 above the client's highest so far",
        latency_ms: "receive time - send time, performance.now() in this process",
        cross_node_fraction: "share of measured deliveries received on another url than the author's",
        latency_cdf_ms: "[percent, ms] pairs of the delivery latency distribution",
      },
    };
  }

  summary(r) {
    const w = r.window, ig = r.integrity, l = w.latency_ms, a = w.ack_latency_ms;
    const errs = Object.entries(w.ack_errors).map(([k, v]) => `${k}=${v}`).join(",") || "none";
    return [
      `status=${r.status}${r.fatal ? " (" + r.fatal + ")" : ""}`,
      `window ${r.params.duration_s}s @ ${r.params.rate} msg/s, ${r.params.clients} clients, ${r.params.rooms} room(s), ${r.params.urls.length} node(s)`,
      `sent=${w.sent} acked=${w.acked} ack_errors=${errs} unresolved=${w.ack_unresolved}`,
      `expected=${w.expected} delivered=${w.delivered} lost=${w.lost}  (whole run: dup=${ig.duplicated} ` +
        `out_of_order=${ig.out_of_order} gaps=${ig.seq_gaps} seq_mismatch=${ig.seq_mismatch} disconnects=${ig.disconnects})`,
      `deliveries/s=${w.deliveries_per_s} (offered ${w.offered_deliveries_per_s})`,
      `latency ms p50=${l.p50} p90=${l.p90} p99=${l.p99} max=${l.max}; ack ms p50=${a.p50} p99=${a.p99}; ` +
        `send lag ms p99=${w.send_lag_ms.p99} max=${w.send_lag_ms.max}`,
      `loadgen cpu ${r.loadgen.cpu_window_pct_of_core}% of a core in the window, event loop utilization ` +
        `${r.loadgen.event_loop_utilization_window}, loop delay p99=` +
        `${r.loadgen.event_loop_delay_ms && r.loadgen.event_loop_delay_ms.p99} ms`,
    ].map((s) => "loadgen: " + s).join("\n");
  }

  finish(status, code) {
    if (this.finished) return;
    this.finished = true;
    this.closing = true;
    this.status = status;
    this.tally();
    const r = this.report();
    if (this.opts.out) fs.writeFileSync(this.opts.out, JSON.stringify(r, null, 2) + "\n");
    process.stdout.write(this.summary(r) + "\n");
    for (const c of this.clients) if (c.socket) c.socket.disconnect();
    process.exit(code);
  }

  /** Idle mode: hold the joined connections, then report (nothing is sent). */
  async idle(hard, ticker) {
    const { opts } = this;
    this.cpu.start = process.cpuUsage();
    log(`idle holding ${this.clients.length}`);
    await new Promise((r) => setTimeout(r, opts["idle-hold"] * 1000));
    this.cpu.end = true;
    this.timings.window_s = opts["idle-hold"];
    log("idle done");
    clearTimeout(hard);
    if (ticker) clearInterval(ticker);
    if (this.fatal) return this.finish("connection_failure", EXIT_FATAL);
    const clean = this.integrity.disconnects === 0;
    return this.finish(clean ? "ok" : "integrity_violation", clean ? EXIT_OK : EXIT_INTEGRITY);
  }

  async main() {
    const { opts } = this;
    this.cpu.begin = process.cpuUsage();
    const hard = setTimeout(() => { this.fail(`hard deadline of ${opts.deadline} s passed`); this.finish("deadline", EXIT_FATAL); },
                            opts.deadline * 1000);
    const ticker = this.progress();
    const tConnect = performance.now();
    log(`run ${this.runId}: connecting ${opts.clients} clients to ${opts.urls.join(", ")} (rooms ${opts["room-prefix"]}-*)`);
    try {
      await this.connectAll();
    } catch (e) {
      this.fail(e.message);
      return this.finish("connect_failed", EXIT_FATAL);
    }
    this.timings.connect_join_s = round3((performance.now() - tConnect) / 1000);
    if (opts["idle-hold"] > 0) return this.idle(hard, ticker);
    log(`all ${opts.clients} clients joined in ${this.timings.connect_join_s}s; sending ${this.totalK} messages`);
    this.t0 = performance.now() + 50;
    this.tWindowStart = this.t0 + opts.warmup * 1000;
    this.tWindowEnd = this.tWindowStart + opts.duration * 1000;
    setTimeout(() => {
      this.cpu.start = process.cpuUsage();
      this.eluStart = performance.eventLoopUtilization();
      this.loopDelay.enable();
      log("window start");
    }, Math.max(0, this.tWindowStart - performance.now()));
    const windowEnded = new Promise((resolve) => setTimeout(() => {
      this.cpu.end = true;
      this.elu = performance.eventLoopUtilization(this.eluStart);
      this.loopDelay.disable();
      this.timings.window_s = round3((performance.now() - this.tWindowStart) / 1000);
      log("window end");
      resolve();
    }, Math.max(0, this.tWindowEnd - performance.now())));
    await this.schedule();
    await windowEnded;
    const tDrain = performance.now();
    await this.drain();
    this.timings.drain_s = round3((performance.now() - tDrain) / 1000);
    clearTimeout(hard);
    if (ticker) clearInterval(ticker);
    if (this.fatal) return this.finish("connection_failure", EXIT_FATAL);
    this.tally();
    const w = this.window, u = this.warmup, ig = this.integrity;
    const clean = [w, u].every((b) => b.lost === 0 && b.ack_unresolved === 0 && !Object.keys(b.ack_errors).length)
      && ig.duplicated === 0 && ig.out_of_order === 0 && ig.seq_mismatch === 0;
    return this.finish(clean ? "ok" : "integrity_violation", clean ? EXIT_OK : EXIT_INTEGRITY);
  }
}

function main(argv) {
  const run = new Run(parseArgs(argv), loadIo());
  run.main().catch((e) => { run.fail(`internal error: ${e.stack || e}`); run.finish("internal_error", EXIT_FATAL); });
}

module.exports = { main };
