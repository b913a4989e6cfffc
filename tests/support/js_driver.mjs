// Drives the official @triplit/client over stdin/stdout for the interop tests.
//
// Needs a global WebSocket (Node 22+, or Node 20/21 with --experimental-websocket).
// Run from a folder whose node_modules holds @triplit/client (the one
// triplit_sync.testing.ensure_js_client_installed() returns): NODE_PATH is not used by ESM, so
// the test passes that folder as argv[2] and the imports are resolved from it.
//
// One JSON request per stdin line: {"id": n, "cmd": "...", ...}; one reply per request on
// stdout: {"id": n, "ok": true, "result": ...} or {"id": n, "ok": false, "error": "..."}.
// Values going in may be tagged {"$date": iso} or {"$set": [...]}; values coming out are
// plain JSON: dates as ISO strings, sets as sorted arrays.
import { createRequire } from 'node:module';
import readline from 'node:readline';
import path from 'node:path';

const base = process.argv[2];
const require = createRequire(path.join(base, 'package.json'));
if (typeof globalThis.WebSocket === 'undefined') {
  throw new Error('this Node has no global WebSocket: run it with --experimental-websocket (Node 20/21)');
}
const { TriplitClient } = await import(require.resolve('@triplit/client'));

let client = null;
const subs = new Map(); // id -> {unsub, results, count, fulfilled, error}

function tagIn(v) {
  if (Array.isArray(v)) return v.map(tagIn);
  if (v && typeof v === 'object') {
    if ('$date' in v) return new Date(v.$date);
    if ('$set' in v) return new Set(v.$set.map(tagIn));
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = tagIn(x);
    return out;
  }
  return v;
}

function plain(v) {
  if (v === null) return undefined;
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Set) return [...v].map(plain).sort();
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      const p = plain(x);
      if (p !== undefined) out[k] = p;
    }
    return out;
  }
  return v;
}

// Key-sorted JSON: equal for equal rows whatever the key order.
function canon(v) {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

async function outboxEmpty() {
  const db = client.db;
  return db.entityStore.doubleBuffer.isEmpty(db.kv);
}

const handlers = {
  async init({ url, token, schema }) {
    client = new TriplitClient({
      serverUrl: url,
      token,
      schema: schema ? schema.collections : undefined,
      roles: schema ? schema.roles : undefined,
      storage: 'memory',
      autoConnect: true,
      logLevel: 'error',
    });
    await client.awaitReady;
    return true;
  },
  async subscribe({ sub, query }) {
    const state = { results: null, count: 0, fulfilled: false, error: null, waiters: [] };
    state.unsub = client.subscribe(
      query,
      (rows) => {
        state.results = plain(rows);
        state.count += 1;
        for (const w of state.waiters.splice(0)) w();
      },
      (err) => { state.error = String(err && err.message || err); },
      { onRemoteFulfilled: () => { state.fulfilled = true; } },
    );
    subs.set(sub, state);
    return true;
  },
  async results({ sub }) {
    const s = subs.get(sub);
    return { results: s.results, count: s.count, fulfilled: s.fulfilled, error: s.error };
  },
  // Wait until the subscription's rows equal `expected` (or time runs out); returns the rows.
  async waitResults({ sub, expected, timeout }) {
    const s = subs.get(sub);
    const deadline = Date.now() + (timeout ?? 10) * 1000;
    const want = canon(expected);
    while (canon(s.results) !== want && Date.now() < deadline) {
      await new Promise((resolve) => {
        s.waiters.push(resolve);
        setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
    }
    return { results: s.results, count: s.count, fulfilled: s.fulfilled, error: s.error };
  },
  async unsubscribe({ sub }) {
    subs.get(sub).unsub();
    subs.delete(sub);
    return true;
  },
  async insert({ collection, entity }) {
    return plain(await client.insert(collection, tagIn(entity)));
  },
  // ops: [["set", path[], value] | ["add", path[], item] | ["remove", path[], item] | ["unset", path[]]]
  async update({ collection, entityId, ops, skipMissing }) {
    if (skipMissing && !(await client.fetchById(collection, entityId, { policy: 'local-only' }))) {
      return false;  // the JS client refuses to update what it does not have
    }
    await client.update(collection, entityId, (e) => {
      for (const [op, p, value] of ops) {
        let target = e;
        for (const k of p.slice(0, -1)) target = target[k];
        const last = p[p.length - 1];
        if (op === 'set') target[last] = tagIn(value);
        else if (op === 'add') target[last].add(tagIn(value));
        else if (op === 'remove') target[last].delete(tagIn(value));
        else if (op === 'unset') delete target[last];
        else throw new Error(`unknown op ${op}`);
      }
    });
    return true;
  },
  async delete({ collection, entityId }) {
    await client.delete(collection, entityId);
    return true;
  },
  async fetch({ query, policy }) {
    return plain(await client.fetch(query, policy ? { policy } : undefined));
  },
  async waitSync({ timeout }) {
    const deadline = Date.now() + (timeout ?? 10) * 1000;
    for (;;) {
      if (client.connectionStatus === 'OPEN' && await outboxEmpty()) return true;
      if (Date.now() > deadline) throw new Error('outbox not empty in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  },
  async close() {
    for (const s of subs.values()) s.unsub();
    subs.clear();
    if (client) { client.disconnect(); }
    setTimeout(() => process.exit(0), 50);
    return true;
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  if (!line.trim()) return;
  let req;
  try { req = JSON.parse(line); } catch (e) { return; }
  try {
    const h = handlers[req.cmd];
    if (!h) throw new Error(`unknown command ${req.cmd}`);
    const result = await h(req);
    process.stdout.write(JSON.stringify({ id: req.id, ok: true, result }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ id: req.id, ok: false, error: String(e && e.stack || e) }) + '\n');
  }
});
rl.on('close', () => process.exit(0));
