"use strict";
/**
 * Command-line flags of both modes: `--name value` or `--name=value`, checked against a
 * table of { kind: "int" | "num" | "str" | "list", def, min, max, help }.
 */

/** The table's flags as help lines. */
function describe(table) {
  return Object.entries(table).map(([name, f]) =>
    `  --${name}${f.def !== undefined ? ` (default ${JSON.stringify(f.def)})` : ""}${f.help ? "  " + f.help : ""}`)
    .join("\n");
}

/**
 * Parse `argv` against `table`; returns { name: value } with every default filled in.
 * `fail(message)` is called on a bad flag (it must not return); `-h`/`--help` calls
 * `help()`.
 */
function parse(table, argv, fail, help) {
  const opts = {};
  for (const [name, f] of Object.entries(table)) opts[name] = f.def;
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i], value;
    if (arg === "-h" || arg === "--help") help();
    if (!arg.startsWith("--")) fail(`unexpected argument ${arg}`);
    arg = arg.slice(2);
    const eq = arg.indexOf("=");
    if (eq >= 0) { value = arg.slice(eq + 1); arg = arg.slice(0, eq); } else { value = argv[++i]; }
    const f = table[arg];
    if (!f) fail(`unknown flag --${arg}`);
    if (value === undefined) fail(`--${arg} needs a value`);
    if (f.kind === "list") {
      opts[arg] = value.split(",").map((s) => s.trim().replace(/\/+$/, "")).filter(Boolean);
    } else if (f.kind === "str") {
      opts[arg] = value;
    } else {
      const n = Number(value);
      if (!Number.isFinite(n) || (f.kind === "int" && !Number.isInteger(n)) || n < f.min || n > f.max) {
        fail(`--${arg} must be a${f.kind === "int" ? "n integer" : " number"} in [${f.min}, ${f.max}]`);
      }
      opts[arg] = n;
    }
  }
  return opts;
}

module.exports = { describe, parse };
