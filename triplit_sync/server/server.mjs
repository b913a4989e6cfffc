// Starts the real Triplit server (@triplit/server, pinned in package.json next to this file),
// bound to 127.0.0.1 only. Used by triplit_sync.testing and `triplit-sync dev`.
//
// node server.mjs [--port N] [--secret S] [--storage memory|sqlite] [--db-path FILE]
//                 [--schema FILE] [--claims-path PATH] [--external-secret-file FILE]
//                 [--verbose] [--exit-with-stdin]
//
// --claims-path is the server's `claimsPath` (where an external token keeps its Triplit
// claims); --external-secret-file holds its `externalJwtSecret` (a public key PEM, RSA or EC, a JWK
// or an HMAC secret) for tokens without an internal x-triplit-token-type. The key comes from a
// file so that an HMAC secret is not shown in the process list.
//
// Prints one line `TRIPLIT_SERVER_READY {"port":N,"host":"127.0.0.1"}` once it listens.
// Exits 0 on SIGTERM / SIGINT.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    secret: { type: 'string', default: 'jwt-key-for-development-only' },
    storage: { type: 'string', default: 'memory' },
    'db-path': { type: 'string' },
    schema: { type: 'string' },
    'claims-path': { type: 'string' },
    'external-secret-file': { type: 'string' },
    verbose: { type: 'boolean', default: false },
    'exit-with-stdin': { type: 'boolean', default: false },
  },
});

function fail(message) {
  process.stderr.write(`triplit server: ${message}\n`);
  process.exit(2);
}

const HOST = '127.0.0.1';
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${args.port}`);
if (!['memory', 'sqlite'].includes(args.storage)) fail(`bad --storage ${args.storage} (memory or sqlite)`);
if (args.storage === 'sqlite') {
  if (!args['db-path']) fail('--storage sqlite needs --db-path FILE');
  // @triplit/server reads the durable store's location from this variable only.
  process.env.LOCAL_DATABASE_URL = args['db-path'];
}

let schema;
if (args.schema) {
  try {
    schema = JSON.parse(readFileSync(args.schema, 'utf8'));
  } catch (e) {
    fail(`cannot read schema ${args.schema}: ${e.message}`);
  }
  if (!schema || typeof schema.collections !== 'object') fail(`schema ${args.schema} has no "collections"`);
}

if (args['claims-path'] !== undefined && !/^[^.]+(\.[^.]+)*$/.test(args['claims-path'])) {
  fail(`bad --claims-path ${args['claims-path']} (dotted names, none empty)`);
}
let externalSecret;
if (args['external-secret-file']) {
  try {
    externalSecret = readFileSync(args['external-secret-file'], 'utf8').trim();
  } catch (e) {
    fail(`cannot read --external-secret-file: ${e.message}`);
  }
  if (!externalSecret) fail('--external-secret-file is empty');
}

// Import only after LOCAL_DATABASE_URL is set.
const { createTriplitStorageProvider } = await import('@triplit/server');
const { createTriplitHonoServer } = await import('@triplit/server/hono');
const { createNodeWebSocket } = await import('@hono/node-ws');
const { serve } = await import('@hono/node-server');
const { Hono } = await import('hono');

const quietLog = { log() {}, startSpan() {}, endSpan() {}, recordMetric() {} };
const verboseLog = {
  log(record) {
    process.stderr.write(`[triplit ${record.level ?? ''}] ${record.message ?? ''}\n`);
  },
  startSpan() {},
  endSpan() {},
  recordMetric() {},
};

let app = new Hono();
const { injectWebSocket, upgradeWebSocket } = createNodeWebSocket({ app });
app = await createTriplitHonoServer(
  {
    storage: await createTriplitStorageProvider(args.storage),
    jwtSecret: args.secret,
    ...(args['claims-path'] !== undefined ? { claimsPath: args['claims-path'] } : {}),
    ...(externalSecret !== undefined ? { externalJwtSecret: externalSecret } : {}),
    dbOptions: schema ? { schema } : {},
    logHandler: args.verbose ? verboseLog : quietLog,
  },
  upgradeWebSocket,
  (e) => {
    if (args.verbose) process.stderr.write(`[triplit error] ${e?.stack ?? e}\n`);
  },
  app,
);

// createServer()(port) from @triplit/server binds every interface; serve() with a hostname
// keeps the server on loopback.
const server = serve({ fetch: app.fetch, port, hostname: HOST }, (info) => {
  process.stdout.write(`TRIPLIT_SERVER_READY ${JSON.stringify({ port: info.port, host: HOST })}\n`);
});
injectWebSocket(server);
server.on('error', (e) => fail(`cannot listen on ${HOST}:${port}: ${e.message}`));

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  // Open websockets would keep server.close() waiting; the process is ending anyway.
  server.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (args['exit-with-stdin']) {
  // The parent holds our stdin open: when it dies, even by SIGKILL, we follow it.
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
