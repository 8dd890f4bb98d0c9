/**
 * The load generator's `storm` mode: lean connections for idle-connection and reconnect
 * storms (bench/storm runs one generator per node and follows its lines).
 *
 *   node bench/loadgen/loadgen.js storm --url http://127.0.0.1:8001 --clients 16667 --first 0 \
 *       --rooms 1000 --room-prefix storm-ab12 [--concurrency 200] [--jitter-ms 1000] \
 *       [--local-address 127.1.0.1,127.1.0.2]
 *
 * Each client is a raw Engine.IO v4 / Socket.IO v5 client over one websocket (the `ws`
 * package, no polling, no permessage-deflate): `0{...}` open -> `40` (an anonymous
 * client: no auth, no Origin, no cookie; PROTOCOL.md "Origin", "Identity") ->
 * `40{"sid"}` -> `420["join",{"room","nick"}]` -> the ack `430[{"ok":true,...}]`;
 * every ping `2` is answered `3`.  Client i (global index --first + k) joins room
 * `<prefix>-r<i % rooms>` as nick `s<i>`.  Nothing else is decoded: events are
 * dropped by their first bytes, so 17,000 idle clients cost little CPU.
 *
 * --local-address: the source addresses, client i connecting from the (i mod n)-th (bench/storm
 * gives each generator loopback addresses of its own: see loopback_sources in generators.py).
 *
 * At most --concurrency clients are between "socket opened" and "join acked" at a
 * time.  A failed attempt (refused, timed out, connect_error) is retried with backoff
 * until --deadline.  A joined client the tool did not close (TCP close, server
 * disconnect, no ping for pingInterval + pingTimeout) is counted as an unrequested
 * disconnect, by reason, and reconnected (unless "reconnect off").
 *
 * Commands, one per line on stdin (or signals):
 *   drop            (SIGUSR1) destroy every socket at once, no close frame and no
 *                   Socket.IO disconnect (a network drop), then reconnect all after a
 *                   random 0..--jitter-ms delay each and rejoin with since + epoch
 *   status          (SIGUSR2) print a progress line now
 *   reconnect on|off  whether unrequested disconnects are reconnected
 *   quit            (SIGTERM, SIGINT, stdin closed) terminate every socket, print "done", exit
 *
 * Output: JSON lines on stdout, each with "ev" and "t" (Unix ms, comparable between
 * processes of one host):
 *   start, progress (every --progress-ms), joined (every client joined in this phase:
 *   first/last join, rate), dropped, error (the first --max-errors samples), done.
 * Exit status: 0 after quit; 2 bad flags, too few open files, or the deadline passed.
 */
"use strict";

const fs = require("fs");
const readline = require("readline");
const flags = require("./flags");

const MAX_CLIENTS = 17000;            // one fd each, under a 20,000-file cap per process
const FD_HEADROOM = 200;              // stdio, the event loop, DNS, retries closing
const FLAGS = {
  url: { kind: "str", def: "", help: "the node, http://HOST:PORT (required)" },
  clients: { kind: "int", def: 100, min: 1, max: MAX_CLIENTS },
  first: { kind: "int", def: 0, min: 0, max: 10_000_000, help: "global index of the first client" },
  rooms: { kind: "int", def: 100, min: 1, max: 1_000_000 },
  "room-prefix": { kind: "str", def: "storm" },
  "nick-prefix": { kind: "str", def: "s" },
  concurrency: { kind: "int", def: 200, min: 1, max: MAX_CLIENTS, help: "clients between open and join ack" },
  "jitter-ms": { kind: "int", def: 1000, min: 0, max: 600_000, help: "reconnect delays are random in [0, this)" },
  "connect-timeout-ms": { kind: "int", def: 15000, min: 100, max: 600_000 },
  "progress-ms": { kind: "int", def: 1000, min: 0, max: 600_000, help: "between progress lines (0 = none)" },
  deadline: { kind: "num", def: 3600, min: 0, max: 86_400, help: "seconds, then exit 2" },
  "max-errors": { kind: "int", def: 20, min: 0, max: 100_000, help: "error lines printed at most" },
  "local-address": { kind: "str", def: "", help: "comma-separated source addresses" },
};

function parseArgs(argv) {
  const o = flags.parse(FLAGS, argv, fatal, () => {
    process.stderr.write(`connection storms (see the header of bench/loadgen/storm.js)\nflags of storm:\n` +
                         `${flags.describe(FLAGS)}\n`);
    process.exit(0);
  });
  const m = /^(https?|wss?):\/\/([^/]+)\/?$/.exec(o.url);
  if (!m) fatal("--url http://HOST:PORT is required");
  o.wsUrl = `ws${m[1].endsWith("s") ? "s" : ""}://${m[2]}/socket.io/?EIO=4&transport=websocket`;
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(o["room-prefix"])) fatal("--room-prefix: 1-40 of A-Z a-z 0-9 _ -");
  return o;
}

function emit(ev, fields) {
  process.stdout.write(JSON.stringify({ ev, t: Date.now(), ...fields }) + "\n");
}

function fatal(msg) {
  emit("fatal", { error: msg });
  process.exit(2);
}

function openFilesLimit() {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"));
    return m && m[1] !== "unlimited" ? Number(m[1]) : Infinity;
  } catch (e) { return Infinity; }
}

function loadWs() {
  try { return require("ws"); } catch (e) { if (e.code !== "MODULE_NOT_FOUND") throw e; }
  return fatal("the ws package is missing: run scripts/setup --dev (npm ci in bench/loadgen/)");
}

// Client states
const IDLE = 0, OPENING = 1, CONNECTING = 2, JOINING = 3, JOINED = 4;

class Storm {
  constructor(opts, WebSocket) {
    this.o = opts;
    this.WebSocket = WebSocket;
    this.clients = [];
    for (let k = 0; k < opts.clients; k++) {
      const i = opts.first + k;
      this.clients.push({ i, ws: null, state: IDLE, seen: 0, seq: null, epoch: null, attempt: 0,
                          timer: null, expectClose: false, tStart: 0,
                          join: `420["join",{"room":"${opts["room-prefix"]}-r${i % opts.rooms}","nick":"${opts["nick-prefix"]}${i}"` });
    }
    this.ready = [];            // FIFO of clients due to connect (head index below)
    this.localAddresses = this.o["local-address"] ? this.o["local-address"].split(",") : [];
    this.readyHead = 0;
    this.inflight = 0;
    this.joined = 0;
    this.open = 0;              // websockets open
    this.reconnect = true;
    this.phaseReported = false;
    this.phase = "connect";
    this.phaseStart = Date.now();
    this.firstJoin = null; this.lastJoin = null; this.phaseJoins = 0;
    this.intervalJoins = 0;
    this.unrequested = {};      // reason -> count
    this.errors = {};           // kind -> count
    this.errorSamples = 0;
    this.attempts = 0;
    this.pingMs = 25000 + 20000;
    this.cpu0 = process.cpuUsage();
    this.tick0 = Date.now();
  }

  // scheduling

  enqueue(c, delayMs) {
    if (delayMs > 0) { c.timer = setTimeout(() => { c.timer = null; this.enqueue(c, 0); }, delayMs); return; }
    this.ready.push(c);
    this.pump();
  }

  pump() {
    while (this.inflight < this.o.concurrency && this.readyHead < this.ready.length) {
      const c = this.ready[this.readyHead++];
      if (this.readyHead > 4096 && this.readyHead * 2 > this.ready.length) {
        this.ready = this.ready.slice(this.readyHead); this.readyHead = 0;
      }
      if (c.state === IDLE && !this.quitting) this.start(c);
    }
  }

  start(c) {
    this.inflight += 1;
    this.attempts += 1;
    c.state = OPENING;
    c.expectClose = false;
    c.tStart = Date.now();
    c.timer = setTimeout(() => this.attemptFailed(c, "timeout"), this.o["connect-timeout-ms"]);
    const ws = new this.WebSocket(this.o.wsUrl, {
      perMessageDeflate: false, skipUTF8Validation: true, maxPayload: 1 << 20,
      handshakeTimeout: this.o["connect-timeout-ms"], followRedirects: false,
      ...(this.localAddresses.length ? { localAddress: this.localAddresses[c.i % this.localAddresses.length] } : {}),
    });
    c.ws = ws;
    ws.on("open", () => { if (c.ws === ws) { this.open += 1; c.opened = true; } });
    ws.on("message", (data) => this.onFrame(c, ws, data));
    ws.on("error", (err) => { if (c.ws === ws && c.state !== JOINED) c.lastError = err.code || err.message; });
    ws.on("close", (code) => this.onClose(c, ws, code));
  }

  onFrame(c, ws, data) {
    if (c.ws !== ws) return;
    c.seen = this.now;
    const b0 = data[0];
    if (b0 === 0x32) { ws.send("3"); return; }                   // eio ping -> pong
    if (b0 === 0x34) {                                            // eio message: a Socket.IO packet
      const b1 = data[1];
      if (b1 === 0x32) return;                                    // an event (message, announcement, presence): dropped
      if (b1 === 0x33 && c.state === JOINING) return this.onJoinAck(c, data);
      if (b1 === 0x30 && c.state === CONNECTING) {                // 40{"sid":..}: connected, join
        c.state = JOINING;
        ws.send(c.seq !== null ? `${c.join},"since":${c.seq},"epoch":${JSON.stringify(c.epoch)}}]` : c.join + "}]");
        return;
      }
      if (b1 === 0x34) return this.attemptFailed(c, "connect_error", data.toString().slice(2, 200));
      if (b1 === 0x31) return this.lost(c, "server_disconnect");   // 41: the server ended the session
      return;
    }
    if (b0 === 0x30 && c.state === OPENING) {                     // eio open: 0{"sid","pingInterval",..}
      try {
        const open = JSON.parse(data.toString().slice(1));
        this.pingMs = (open.pingInterval || 25000) + (open.pingTimeout || 20000);
      } catch (e) { /* defaults */ }
      c.state = CONNECTING;
      ws.send("40");
      return;
    }
    if (b0 === 0x31) this.lost(c, "server_close");                // eio close
  }

  onJoinAck(c, data) {
    let ack;
    try { ack = JSON.parse(data.toString().slice(3))[0]; } catch (e) { ack = null; }
    if (!ack || ack.ok !== true) return this.attemptFailed(c, "join_refused", data.toString().slice(3, 200));
    c.seq = ack.seq;
    c.epoch = ack.epoch;
    clearTimeout(c.timer); c.timer = null;
    c.state = JOINED;
    c.attempt = 0;
    this.inflight -= 1;
    this.joined += 1;
    this.phaseJoins += 1;
    this.intervalJoins += 1;
    const t = Date.now();
    if (this.firstJoin === null) this.firstJoin = t;
    this.lastJoin = t;
    if (this.joined === this.clients.length && !this.phaseReported) this.phaseDone();
    this.pump();
  }

  phaseDone() {
    this.phaseReported = true;
    const span = (this.lastJoin - this.firstJoin) / 1000;
    emit("joined", { phase: this.phase, n: this.joined, joins: this.phaseJoins, since_phase_ms: this.lastJoin - this.phaseStart,
                     first_join: this.firstJoin, last_join: this.lastJoin,
                     rate: span > 0 ? Math.round(this.phaseJoins / span) : null, attempts: this.attempts });
  }

  onClose(c, ws, code) {
    if (c.ws !== ws) return;
    if (c.opened) { this.open -= 1; c.opened = false; }
    if (c.expectClose || this.quitting) { c.ws = null; return; }
    if (c.state === JOINED) this.lost(c, "close_" + code);
    else if (c.state !== IDLE) this.attemptFailed(c, c.lastError || "closed_" + code);
  }

  // a joined client lost without being asked: counted, then reconnected
  lost(c, reason) {
    if (c.state !== JOINED) return this.attemptFailed(c, reason);
    this.unrequested[reason] = (this.unrequested[reason] || 0) + 1;
    this.joined -= 1;
    this.discard(c);
    if (this.reconnect) this.enqueue(c, Math.floor(Math.random() * this.o["jitter-ms"]));
  }

  attemptFailed(c, kind, detail) {
    if (c.state === IDLE || c.state === JOINED) return;
    this.errors[kind] = (this.errors[kind] || 0) + 1;
    if (this.errorSamples < this.o["max-errors"]) {
      this.errorSamples += 1;
      emit("error", { client: c.i, kind, detail: detail || c.lastError || null, attempt: c.attempt });
    }
    this.inflight -= 1;
    this.discard(c);
    c.attempt += 1;
    const backoff = Math.min(5000, 250 * 2 ** Math.min(c.attempt, 5));
    this.enqueue(c, backoff / 2 + Math.random() * backoff / 2);
    this.pump();
  }

  discard(c) {
    if (c.timer) { clearTimeout(c.timer); c.timer = null; }
    c.state = IDLE;
    c.lastError = null;
    const ws = c.ws;
    if (ws) {
      c.expectClose = true;
      if (c.opened) { this.open -= 1; c.opened = false; }
      c.ws = null;
      ws.terminate();   // TCP close, no close frame
    }
  }

  // commands

  drop() {
    const t = Date.now();
    let dropped = 0;
    for (const c of this.clients) {
      if (c.state !== IDLE) dropped += 1;
      this.discard(c);   // ws.terminate(): the TCP socket destroyed, no close frame, no 41
    }
    this.joined = 0; this.inflight = 0;
    this.ready = []; this.readyHead = 0;
    this.phase = "reconnect"; this.phaseStart = t; this.phaseReported = false;
    this.firstJoin = this.lastJoin = null; this.phaseJoins = 0; this.attempts = 0;
    emit("dropped", { n: dropped, took_ms: Date.now() - t });
    for (const c of this.clients) this.enqueue(c, Math.floor(Math.random() * this.o["jitter-ms"]));
  }

  sweep() {   // a joined client that heard nothing (not even a ping) for too long is lost
    const limit = this.now - this.pingMs - 5000;
    for (const c of this.clients) if (c.state === JOINED && c.seen < limit) this.lost(c, "ping_timeout");
  }

  progress() {
    const t = Date.now(), dt = (t - this.tick0) / 1000, cpu = process.cpuUsage(this.cpu0);
    emit("progress", { phase: this.phase, joined: this.joined, open: this.open, inflight: this.inflight,
                       queued: this.ready.length - this.readyHead, rate: dt > 0 ? Math.round(this.intervalJoins / dt) : 0,
                       unrequested: this.unrequested, errors: this.errors,
                       cpu_pct: dt > 0 ? Math.round((cpu.user + cpu.system) / 1e4 / dt) : 0,
                       rss_mb: Math.round(process.memoryUsage.rss() / 2 ** 20) });
    this.tick0 = t; this.cpu0 = process.cpuUsage(); this.intervalJoins = 0;
  }

  quit(code = 0, why = "quit") {
    if (this.quitting) return;
    this.quitting = true;
    this.progress();
    for (const c of this.clients) { const ws = c.ws; c.expectClose = true; if (ws) ws.terminate(); }
    emit("done", { why, joined: this.joined, unrequested: this.unrequested, errors: this.errors });
    process.stdout.write("", () => process.exit(code));
  }

  command(line) {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === "drop") this.drop();
    else if (cmd === "status") this.progress();
    else if (cmd === "reconnect") { this.reconnect = arg !== "off"; emit("reconnect", { on: this.reconnect }); }
    else if (cmd === "quit") this.quit();
    else if (cmd) emit("error", { kind: "unknown_command", detail: cmd });
  }

  run() {
    const limit = openFilesLimit();
    if (this.clients.length + FD_HEADROOM > limit) {
      fatal(`${this.clients.length} clients need ${this.clients.length + FD_HEADROOM} open files, the limit is ${limit}: ` +
            "raise it first (ulimit -n \"$(ulimit -Hn)\")");
    }
    this.now = Date.now();
    setInterval(() => { this.now = Date.now(); }, 100).unref();
    setInterval(() => this.sweep(), 5000).unref();
    if (this.o["progress-ms"] > 0) setInterval(() => this.progress(), this.o["progress-ms"]);
    setTimeout(() => this.quit(2, "deadline"), this.o.deadline * 1000).unref();
    process.on("SIGUSR1", () => this.drop());
    process.on("SIGUSR2", () => this.progress());
    process.on("SIGTERM", () => this.quit());
    process.on("SIGINT", () => this.quit());
    const rl = readline.createInterface({ input: process.stdin });
    rl.on("line", (line) => this.command(line));
    rl.on("close", () => this.quit(0, "stdin closed"));
    emit("start", { pid: process.pid, url: this.o.url, clients: this.clients.length, first: this.o.first,
                    rooms: this.o.rooms, room_prefix: this.o["room-prefix"], concurrency: this.o.concurrency,
                    open_files_limit: limit === Infinity ? null : limit });
    for (const c of this.clients) this.ready.push(c);
    this.pump();
  }
}

function main(argv) {
  new Storm(parseArgs(argv), loadWs()).run();
}

module.exports = { main };
