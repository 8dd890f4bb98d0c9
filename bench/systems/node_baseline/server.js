/**
 * The chat contract on Node socket.io 4.8 + @socket.io/redis-adapter: a baseline.
 *
 * Not part of the product: scripts/bench runs three of these against one local
 * redis-server (the one the RedisManager baseline uses) to measure "what a Node team
 * would pick" beside our cluster, with the same load generator.  It mirrors
 * bench/baseline_redis/app.py event for event, written the plain Node way:
 *
 * - `join`: `socket.join(room)`, an `announcement` to the room, and the ack's
 *   `history`/`seq` read from Redis (the last `--history-size` messages and a
 *   counter, in one MULTI/EXEC); `since` + `epoch` resume as in the baseline;
 * - `leave`: leaves the room, announces it, acks `{ok: true}`;
 * - `message`: a repeated `cid` returns the first `id`/`seq`; otherwise `seq` =
 *   INCR, the message is appended to the history (RPUSH + LTRIM) with its cid key,
 *   then `io.to(room).emit("message", ...)` - which the redis adapter delivers to
 *   this process's members and PUBLISHes to the others - and only then acked.
 *
 * Nothing orders a room's messages across concurrent senders (two INCRs can publish
 * out of order): that is the behaviour being measured.  The input rules are the
 * product's (chatstream/rules.py), ported below; error acks are
 * `{ok: false, error, detail}` as in the contract.
 *
 *   node bench/systems/node_baseline/server.js --name node1 --port 41001 --redis redis://127.0.0.1:41000/0
 *
 * `GET /healthz` answers 200 `{"ok": true, "node": ..., "broker": "up"}` while Redis
 * answers a PING.  SIGTERM or SIGINT stops the server.
 */
"use strict";
const http = require("node:http");
const crypto = require("node:crypto");
const { parseArgs } = require("node:util");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

// A retried cid is recognised for this long (as in the RedisManager baseline).
const CID_TTL_SECS = 3600;
// chatstream/rules.py
const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const NICK_MAX = 32, TEXT_MAX = 2000, CID_MAX = 64;
const NICK_REFUSED_RE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const TEXT_REFUSED_RE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]/;

// In the log format bench/workloads/measure.py's log_findings counts (" ERROR ").
const logError = (node, what) => console.error(`${new Date().toISOString()} ERROR ${node}: ${what}`);

class ContractError extends Error {
  constructor(code, detail) { super(detail); this.code = code; }
  ack() { return { ok: false, error: this.code, detail: this.message }; }
}

function typed(payload, field, kind, name) {
  const value = payload[field];
  if (value === undefined || value === null) return null;
  const ok = kind === "int" ? Number.isInteger(value) : typeof value === kind;
  if (!ok) throw new ContractError("invalid_payload", `${field} must be ${name}`);
  return value;
}

function object(payload) {
  if (!payload || typeof payload !== "object" || Array.isArray(payload)) {
    throw new ContractError("invalid_payload", "the payload must be a JSON object");
  }
  return payload;
}

function room(payload) {
  const value = typed(payload, "room", "string", "a string") || "";
  if (!ROOM_RE.test(value)) throw new ContractError("invalid_room", "room must be 1-64 characters of A-Z a-z 0-9 _ -");
  return value;
}

function nick(payload) {
  const value = (typed(payload, "nick", "string", "a string") || "").normalize("NFKC").trim();
  if (!value || [...value].length > NICK_MAX) {
    throw new ContractError("invalid_nick", `nick must be 1-${NICK_MAX} characters after trimming`);
  }
  if (NICK_REFUSED_RE.test(value)) {
    throw new ContractError("invalid_nick", "nick must not contain control, format or separator characters");
  }
  return value;
}

function text(payload) {
  const value = typed(payload, "text", "string", "a string") || "";
  if (!value.trim()) throw new ContractError("invalid_text", "text must not be empty or only whitespace");
  if ([...value].length > TEXT_MAX) throw new ContractError("invalid_text", `text must be at most ${TEXT_MAX} characters`);
  if (TEXT_REFUSED_RE.test(value)) {
    throw new ContractError("invalid_text", "text must not contain control characters other than newline and tab");
  }
  return value;
}

function cid(payload) {
  const value = typed(payload, "cid", "string", "a string");
  if (value !== null && (value.length < 1 || value.length > CID_MAX)) {
    throw new ContractError("invalid_payload", `cid must be 1-${CID_MAX} characters`);
  }
  return value;
}

function joinRequest(payload) {
  payload = object(payload);
  const since = typed(payload, "since", "int", "an integer");
  if (since !== null && since < 0) throw new ContractError("invalid_payload", "since must be a non-negative integer");
  return { room: room(payload), nick: nick(payload), since, epoch: typed(payload, "epoch", "string", "a string") };
}

/** The contract's handlers for one connection (the baseline's RedisChat, per socket). */
function serve(io, store, node, epoch, historySize) {
  const announce = (r, t) => io.to(r).emit("announcement", { room: r, text: t, ts: Date.now() });
  // an ack that arrives as a function; anything else (no ack asked) is dropped
  const handler = (fn) => async (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : () => {};
    const payload = args[0];
    try {
      ack(await fn(payload));
    } catch (e) {
      if (e instanceof ContractError) ack(e.ack());
      else { logError(node, e.stack || e); ack({ ok: false, error: "unavailable", detail: String(e) }); }
    }
  };

  io.on("connection", (socket) => {
    const rooms = new Map();   // room -> nick
    socket.on("disconnect", () => {
      for (const [r, n] of rooms) announce(r, `${n} left`);
    });

    socket.on("join", handler(async (payload) => {
      const req = joinRequest(payload);
      rooms.set(req.room, req.nick);
      socket.join(req.room);
      announce(req.room, `${req.nick} joined`);
      const [raw, seqText] = await store.multi()
        .lRange(`room:${req.room}:history`, 0, -1).get(`room:${req.room}:seq`).exec();
      let history = raw.map((m) => JSON.parse(m));
      const seq = Number(seqText || 0);
      let gap = false;
      if (req.since !== null) {
        if (req.epoch !== epoch) gap = true;
        else {
          gap = req.since < seq && (!history.length || history[0].seq > req.since + 1);
          history = history.filter((m) => m.seq > req.since);
        }
      }
      return { ok: true, room: req.room, nick: req.nick, epoch, seq, history, gap };
    }));

    socket.on("leave", handler(async (payload) => {
      const r = room(object(payload));
      const n = rooms.get(r);
      if (n === undefined) throw new ContractError("not_joined", `not in room ${r}`);
      rooms.delete(r);
      socket.leave(r);
      announce(r, `${n} left`);
      return { ok: true };
    }));

    socket.on("message", handler(async (payload) => {
      payload = object(payload);
      const r = room(payload), t = text(payload), c = cid(payload);
      const n = rooms.get(r);
      if (n === undefined) throw new ContractError("not_joined", `join room ${r} first`);
      const cidKey = `room:${r}:cid:${c}`;
      if (c !== null) {
        const first = await store.get(cidKey);
        if (first !== null) {
          const m = JSON.parse(first);
          return { ok: true, id: m.id, seq: m.seq };
        }
      }
      const message = { id: crypto.randomUUID().replace(/-/g, ""), seq: await store.incr(`room:${r}:seq`),
                        room: r, nick: n, text: t, ts: Date.now(), node };
      if (c !== null) message.cid = c;
      const encoded = JSON.stringify(message);
      const tx = store.multi().rPush(`room:${r}:history`, encoded).lTrim(`room:${r}:history`, -historySize, -1);
      if (c !== null) tx.set(cidKey, encoded, { EX: CID_TTL_SECS });
      await tx.exec();
      io.to(r).emit("message", message);
      return { ok: true, id: message.id, seq: message.seq };
    }));
  });
}

async function main() {
  const { values: args } = parseArgs({ options: {
    name: { type: "string", default: "node1" }, host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" }, redis: { type: "string", default: "redis://127.0.0.1:6379/0" },
    "history-size": { type: "string", default: "50" },
  } });
  if (!args.port) throw new Error("--port is required");
  const store = createClient({ url: args.redis });
  const pub = store.duplicate(), sub = store.duplicate();
  for (const c of [store, pub, sub]) c.on("error", (e) => logError(args.name, `redis: ${e.message}`));
  await Promise.all([store.connect(), pub.connect(), sub.connect()]);
  // One epoch per Redis instance: the first node to start sets it.
  await store.set("chat:epoch", crypto.randomBytes(8).toString("hex"), { NX: true });
  const epoch = await store.get("chat:epoch");

  const server = http.createServer({ noDelay: true }, async (req, res) => {
    if (req.url !== "/healthz") { res.writeHead(404, { "Content-Type": "text/plain" }); res.end("not found\n"); return; }
    let up = false;
    try { up = (await store.ping()) === "PONG"; } catch (e) { up = false; }
    res.writeHead(up ? 200 : 503, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ ok: up, node: args.name, broker: up ? "up" : "down" }));
  });
  // No CORS headers (the Python baseline has cors_allowed_origins=[]: same-origin only).
  const io = new Server(server, { adapter: createAdapter(pub, sub), serveClient: false });
  serve(io, store, args.name, epoch, Number(args["history-size"]));
  const stop = () => {
    io.close();
    Promise.allSettled([store.quit(), pub.quit(), sub.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  server.listen(Number(args.port), args.host, () => {
    console.error(`node ${args.name} (Node socket.io + redis adapter baseline) serving on http://${args.host}:${args.port}/`);
  });
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
