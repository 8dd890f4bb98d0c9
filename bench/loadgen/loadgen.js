#!/usr/bin/env node
/**
 * The chat cluster's load generator, one program with two modes (client contract: PROTOCOL.md):
 *
 *   node bench/loadgen/loadgen.js rate  --urls URL1,URL2 [--rate 100 ...]   (rate.js)
 *       chat messages at a fixed rate through socket.io-client, every delivery checked:
 *       latency, loss, duplicates, order; with --idle-hold S, joined connections held
 *       silent instead. scripts/bench's workloads and `scripts/bench sanity` run it.
 *   node bench/loadgen/loadgen.js storm --url URL [--clients 17000 ...]     (storm.js)
 *       lean raw Engine.IO clients that join and hold, dropped and rejoined on command:
 *       idle-connection and reconnect storms. bench/storm runs one per node.
 *
 * `MODE --help` lists a mode's flags. Why Node: one event loop and a cheap socket per
 * connection, so the generator is not the bottleneck. Its packages are its own
 * (package.json here; scripts/setup --dev runs npm ci).
 */
"use strict";

const MODES = { rate: "./rate", storm: "./storm" };
const [mode, ...rest] = process.argv.slice(2);
if (!Object.hasOwn(MODES, mode || "")) {
  process.stderr.write(`usage: loadgen.js ${Object.keys(MODES).join("|")} [flags]  (MODE --help lists them)\n`);
  process.exit(mode === "-h" || mode === "--help" ? 0 : 2);
}
require(MODES[mode]).main(rest);
