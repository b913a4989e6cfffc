// One benchmark scenario with the official JS client (@triplit/client), in a fresh Node process.
//
// Run by bench/_proc.py from a folder whose node_modules is the pinned server's install (ESM resolves
// bare imports next to the script, so the harness copies this file there). The job (JSON) comes on
// stdin; the last stdout line is `BENCH_RESULT {...}`. Times are performance.now() milliseconds.

import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
// The client needs a browser-style global WebSocket: Node's own (undici), built in from Node 22 and
// behind --experimental-websocket on Node 20/21 (the harness adds the flag). This subclass also counts
// the text frame payload bytes in each direction: the same thing the Python side counts.
if (typeof globalThis.WebSocket === 'undefined') {
  process.stderr.write('this Node has no global WebSocket: use Node >= 22 or --experimental-websocket\n');
  process.exit(2);
}
const bytes = { received: 0, sent: 0 };
const sizeOf = (data) =>
  typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength ?? data.size ?? 0;
class CountingWebSocket extends globalThis.WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (evt) => {
      bytes.received += sizeOf(evt.data);
    });
  }
  send(data) {
    bytes.sent += sizeOf(data);
    return super.send(data);
  }
}
globalThis.WebSocket = CountingWebSocket;

const { TriplitClient } = await import('@triplit/client');

const job = JSON.parse(readFileSync(0, 'utf8'));
const schema = JSON.parse(readFileSync(job.schema_path, 'utf8'));
const now = () => performance.now();
const rss = () => process.memoryUsage().rss;

function emit(result) {
  process.stdout.write(`BENCH_RESULT ${JSON.stringify({ client: 'js', ...result })}\n`);
}

async function makeClient({ durable = false, connect = true } = {}) {
  let storage = 'memory';
  let db;
  if (durable) {
    // The JS client's durable storage in Node: the SQLite KV store on better-sqlite3.
    const { SQLiteKVStore } = await import('@triplit/client/storage/sqlite');
    // better-sqlite3 is built once, in the server's install (bench/_proc.py names its node_modules).
    const Database = createRequire(join(process.env.TRIPLIT_SYNC_SERVER_MODULES, '..', 'package.json'))('better-sqlite3');
    mkdirSync(job.data_dir, { recursive: true });
    db = new Database(join(job.data_dir, `${job.name}.sqlite`));
    storage = new SQLiteKVStore(db);
  }
  const client = new TriplitClient({
    serverUrl: job.url,
    token: job.token,
    schema: schema.collections,
    roles: schema.roles,
    storage,
    autoConnect: false,
    logLevel: 'error',
  });
  if (!connect) return { client, db };
  const ready = new Promise((resolve) => {
    const off = client.onSyncMessageReceived((msg) => {
      if (msg.type === 'READY') {
        off();
        resolve();
      }
    });
  });
  await client.connect();
  await withTimeout(ready, 30_000, 'READY');
  return { client, db };
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function allTodos(client) {
  return client.query('todos');
}

// Resolves with the time of the first callback whose rows satisfy `done(rows)`.
function subscribeUntil(client, query, done, what) {
  return withTimeout(
    new Promise((resolve, reject) => {
      let finished = false;
      const unsub = client.subscribe(
        query,
        (rows) => {
          if (!finished && done(rows)) {
            finished = true;
            resolve({ t: now(), rows, unsub });
          }
        },
        (err) => reject(err),
      );
    }),
    job.timeout_ms ?? 300_000,
    what,
  );
}

// Resolves when the server acknowledged the write of `id` (the JS client's onEntitySyncSuccess).
function ackOf(client, id) {
  return new Promise((resolve) => {
    const off = client.onEntitySyncSuccess('todos', id, () => {
      off();
      resolve(now());
    });
  });
}

function newTodo(i) {
  // Ids made here (not by the client) so that the harness can tell the clients' rows apart.
  const id = `${job.id_prefix}${String(i).padStart(6, '0')}`;
  return { id, text: `bench write ${i} #7`, owner: job.user_id };
}

const scenarios = {
  // P1 (and P6): a fresh process subscribes to all todos; time to the first callback with all N rows.
  async P1() {
    const rss0 = rss();
    const { client } = await makeClient();
    const rssConnected = rss();
    const t0 = now();
    const { t, rows } = await subscribeUntil(client, allTodos(client), (r) => r.length >= job.n, 'all rows');
    const rss1 = rss();
    return {
      load_ms: t - t0, rows: rows.length, rss_before: rss0, rss_connected: rssConnected, rss_after: rss1,
      rss_growth: rss1 - rss0, bytes_received: bytes.received, bytes_sent: bytes.sent,
    };
  },

  // P2: subscriber on a live query; another client inserts one at a time, each waiting for its ack.
  async P2() {
    const { client: sub } = await makeClient();
    const { client: writer } = await makeClient();
    const q = sub.query('todos').Where('completed', '=', false).Order('created_at', 'DESC').Limit(50);
    const started = {};
    const seen = {};
    let fulfilled;
    const remote = new Promise((resolve) => { fulfilled = resolve; });
    let allSeen;
    const allSeenP = new Promise((resolve) => { allSeen = resolve; });
    let nSeen = 0;
    sub.subscribe(q, (rows) => {
      const t = now();
      for (const row of rows) {
        const id = row.id;
        if (started[id] !== undefined && seen[id] === undefined) {
          seen[id] = t;
          nSeen += 1;
          if (nSeen === job.count) allSeen();
        }
      }
    }, undefined, { onRemoteFulfilled: () => fulfilled() });
    await withTimeout(remote, 60_000, 'subscriber fulfilled');
    const ackMs = [];
    for (let i = 0; i < job.count; i++) {
      const todo = newTodo(i);
      const acked = ackOf(writer, todo.id);
      const t0 = now();
      started[todo.id] = t0;
      await writer.insert('todos', todo);
      ackMs.push((await withTimeout(acked, 30_000, 'ack')) - t0);
    }
    await withTimeout(allSeenP, 30_000, 'all inserts seen by the subscriber');
    const latency = Object.keys(started).map((id) => seen[id] - started[id]);
    return { latency_ms: latency, ack_ms: ackMs };
  },

  // P3a: sequential inserts, each waiting for its ack.
  async P3a() {
    const { client } = await makeClient();
    const ms = [];
    for (let i = 0; i < job.count; i++) {
      const todo = newTodo(i);
      const acked = ackOf(client, todo.id);
      const t0 = now();
      await client.insert('todos', todo);
      ms.push((await withTimeout(acked, 30_000, 'ack')) - t0);
    }
    return { ack_ms: ms };
  },

  // P3b: inserts as fast as possible, then wait until all are acknowledged.
  async P3b() {
    const { client } = await makeClient();
    const last = newTodo(job.count - 1).id;
    const lastAcked = ackOf(client, last); // one batch in flight at a time, in order: the last ack is the end
    const t0 = now();
    for (let i = 0; i < job.count; i++) await client.insert('todos', newTodo(i));
    const tLocal = now();
    const t1 = await withTimeout(lastAcked, 600_000, 'all acks');
    return { total_ms: t1 - t0, local_ms: tLocal - t0, inserts_per_s: job.count / ((t1 - t0) / 1000) };
  },

  // P4 phase A: a durable client syncs all todos, then exits (its SQLite file stays).
  async P4_load() {
    const { client, db } = await makeClient({ durable: true });
    const t0 = now();
    const { t, rows } = await subscribeUntil(client, allTodos(client), (r) => r.length >= job.n, 'all rows');
    const result = {
      load_ms: t - t0, rows: rows.length, bytes_received: bytes.received, bytes_sent: bytes.sent,
    };
    client.disconnect();
    db.close();
    return result;
  },

  // P4 phase B: a new process on the same data resubscribes; time until all the changes are visible.
  async P4_resume() {
    const { updated, deleted, inserted } = job.expect;
    const { client, db } = await makeClient({ durable: true });
    const wanted = Object.keys(updated).length + deleted.length + inserted.length;
    let firstRows = null;
    const t0 = now();
    const { t, rows } = await subscribeUntil(client, allTodos(client), (r) => {
      if (firstRows === null) firstRows = r.length;
      const byId = new Map();
      for (const row of r) byId.set(row.id, row);
      let ok = 0;
      for (const [id, text] of Object.entries(updated)) if (byId.get(id)?.text === text) ok++;
      for (const id of deleted) if (!byId.has(id)) ok++;
      for (const id of inserted) if (byId.has(id)) ok++;
      return ok === wanted;
    }, 'all changes');
    const result = {
      resume_ms: t - t0, rows: rows.length, first_callback_rows: firstRows,
      bytes_received: bytes.received, bytes_sent: bytes.sent,
    };
    client.disconnect();
    db.close();
    return result;
  },

  // P5: a local-only query over the synced cache, `runs` times.
  async P5() {
    const { client } = await makeClient();
    let fulfilled;
    const remote = new Promise((resolve) => { fulfilled = resolve; });
    client.subscribe(allTodos(client), () => {}, undefined, { onRemoteFulfilled: () => fulfilled() });
    await withTimeout(remote, 120_000, 'all todos synced');
    const count = (await client.fetch(allTodos(client), { policy: 'local-only' })).length;
    const q = client.query('todos')
      .Where('completed', '=', false)
      .Where('text', 'like', '%7%')
      .Order('created_at', 'DESC')
      .Limit(20);
    const ms = [];
    let ids;
    for (let i = 0; i < job.runs; i++) {
      const t0 = now();
      const rows = await client.fetch(q, { policy: 'local-only' });
      ms.push(now() - t0);
      ids ??= rows.map((r) => r.id);
    }
    return { query_ms: ms, cached: count, result_ids: ids };
  },
};

// ---- the scale scenarios (issue 18); the Python mirror is bench/py_scale.py

function s1Queries(client) {
  return {
    indexed: client.query('todos').Where('completed', '=', false).Order('created_at', 'DESC').Limit(20),
    scan: client.query('todos').Where('text', 'like', '%777%'), // every row read
  };
}

async function waitFulfilled(client, query, what, ms = 120_000) {
  let fulfilled;
  const remote = new Promise((resolve) => { fulfilled = resolve; });
  const unsub = client.subscribe(query, () => {}, undefined, { onRemoteFulfilled: () => fulfilled() });
  await withTimeout(remote, ms, what);
  return unsub;
}

Object.assign(scenarios, {
  // S1: N todos synced (one live query on all of them, as in P5); both local queries `runs` times each.
  async S1() {
    const { client } = await makeClient();
    await waitFulfilled(client, allTodos(client), 'all todos synced', job.timeout_ms);
    const result = { cached: (await client.fetch(allTodos(client), { policy: 'local-only' })).length };
    for (const [name, q] of Object.entries(s1Queries(client))) {
      const ms = [];
      for (let i = 0; i <= job.runs; i++) {
        const t0 = now();
        const rows = await client.fetch(q, { policy: 'local-only' });
        const t = now() - t0;
        if (i === 0) {
          result[`${name}_first_ms`] = t;
          result[`${name}_ids`] = rows.map((r) => r.id);
        } else ms.push(t);
      }
      result[`${name}_ms`] = ms;
    }
    return result;
  },

  // S2 phase A: a durable client syncs all N todos, then exits.
  async S2_load() {
    return scenarios.P4_load();
  },

  // S2 (and S3): a new process opens the durable client (no connection) and answers S1's indexed query.
  async S2_reopen() {
    const rss0 = rss();
    const t0 = now();
    const { client, db } = await makeClient({ durable: true, connect: false });
    const t1 = now();
    const rows = await client.fetch(s1Queries(client).indexed, { policy: 'local-only' });
    const t2 = now();
    const rss1 = rss();
    const cached = (await client.fetch(allTodos(client), { policy: 'local-only' })).length;
    db.close();
    return {
      reopen_ms: t2 - t0, open_ms: t1 - t0, first_query_ms: t2 - t1, rows: rows.length, cached,
      rss_growth: rss1 - rss0, bytes_per_entity: (rss1 - rss0) / Math.max(cached, 1),
      result_ids: rows.map((r) => r.id),
    };
  },

  // S4: `queries` live queries over N cached todos; `count` inserts, each matching one of them.
  async S4() {
    const { client } = await makeClient();
    await client.fetch(allTodos(client), { policy: 'remote-first' });
    const seen = {};
    const waiters = {};
    const subscribe = async (i) => {
      const q = client.query('todos').Where('text', '=', `s4 query ${i}`);
      let fulfilled;
      const remote = new Promise((resolve) => { fulfilled = resolve; });
      client.subscribe(q, (rows) => {
        const t = now();
        for (const row of rows) {
          if (waiters[row.id] && seen[row.id] === undefined) {
            seen[row.id] = t;
            waiters[row.id]();
          }
        }
      }, undefined, { onRemoteFulfilled: () => fulfilled() });
      await withTimeout(remote, 60_000, `live query ${i} fulfilled`);
    };
    const writes = async (prefix, k, targets) => {
      const out = [];
      for (let j = 0; j < k; j++) {
        const id = `${job.id_prefix}${prefix}${String(j).padStart(5, '0')}`;
        const todo = { id, text: `s4 query ${(j * 7) % targets}`, owner: job.user_id };
        const shown = new Promise((resolve) => { waiters[id] = resolve; });
        const acked = ackOf(client, id);
        const t0 = now();
        await client.insert('todos', todo);
        await withTimeout(shown, 30_000, "the write's callback");
        out.push(seen[id] - t0);
        await withTimeout(acked, 30_000, 'ack');
      }
      return out;
    };
    await subscribe(0);
    const one = await writes('a', Math.floor(job.count / 4), 1);
    for (let i = 1; i < job.queries; i++) await subscribe(i);
    const many = await writes('b', job.count, job.queries);
    return { latency_ms: many, latency_one_ms: one };
  },

  // S5, one of the subscriber processes: P2's live query; S5_READY once answered, then wall-clock
  // times of the writer's rows.
  async S5_sub() {
    const { client } = await makeClient();
    const q = client.query('todos').Where('completed', '=', false).Order('created_at', 'DESC').Limit(50);
    const seen = {};
    let n = 0;
    let finish;
    const done = new Promise((resolve) => { finish = resolve; });
    let fulfilled;
    const remote = new Promise((resolve) => { fulfilled = resolve; });
    client.subscribe(q, (rows) => {
      const t = performance.timeOrigin + performance.now();
      for (const row of rows) {
        if (row.id.startsWith(job.watch_prefix) && seen[row.id] === undefined) {
          seen[row.id] = t / 1000;
          n += 1;
          if (n >= job.count) finish();
        }
      }
    }, undefined, { onRemoteFulfilled: () => fulfilled() });
    await withTimeout(remote, 60_000, 'subscriber fulfilled');
    process.stdout.write('S5_READY\n');
    await withTimeout(done, job.timeout_ms ?? 300_000, 'every write seen');
    return { seen };
  },

  // S5, the writer: inserts one at a time, each waiting for its ack; wall-clock times.
  async S5_write() {
    const { client } = await makeClient();
    const started = {};
    for (let i = 0; i < job.count; i++) {
      const id = `${job.watch_prefix}${String(i).padStart(5, '0')}`;
      const acked = ackOf(client, id);
      started[id] = (performance.timeOrigin + performance.now()) / 1000;
      await client.insert('todos', { id, text: `fan-out ${i}`, owner: job.user_id });
      await withTimeout(acked, 30_000, 'ack');
    }
    return { started };
  },
});

const run = scenarios[job.scenario];
if (!run) {
  process.stderr.write(`unknown scenario ${job.scenario}\n`);
  process.exit(2);
}
try {
  emit({ scenario: job.scenario, ...(await run()) });
  process.exit(0);
} catch (e) {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
}
