/**
 * The floor for the queued-endpoint benchmark: the least an accept path that persists a message and
 * enqueues a job can do. `POST /floor {content}` does one PostgreSQL INSERT and one BullMQ `queue.add`
 * (nothing consumes the queue) and answers 202. Started by bench/run.ts as a child process:
 *
 *   DATABASE_URL, REDIS_URL, PORT, HOST, QUEUE_PREFIX   (all required)
 *
 * On SIGTERM/SIGINT, or when its stdin closes (the harness died), it obliterates its queue and exits.
 */
import Fastify from 'fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`floor-server: ${name} is required\n`);
    process.exit(2);
  }
  return value;
}

const databaseUrl = required('DATABASE_URL');
const redisUrl = required('REDIS_URL');
const port = Number(required('PORT'));
const host = process.env.HOST || '127.0.0.1';
const prefix = required('QUEUE_PREFIX');

// Same pool size as the real server's default (DATABASE_POOL_MAX=20).
const pool = new pg.Pool({ connectionString: databaseUrl, max: 20, application_name: 'honeyjar-bench-floor' });
pool.on('error', () => {});
await pool.query(
  'create table if not exists bench_floor(id bigserial primary key, body text, created_at timestamptz default now())',
);

const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
const queue = new Queue('bench-floor', { connection, prefix });
await queue.waitUntilReady();

const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
app.post(
  '/floor',
  {
    schema: {
      body: {
        type: 'object',
        required: ['content'],
        additionalProperties: false,
        properties: { content: { type: 'string', minLength: 1 } },
      },
    },
  },
  async (request, reply) => {
    const { content } = request.body as { content: string };
    const inserted = await pool.query<{ id: string }>('insert into bench_floor(body) values ($1) returning id', [content]);
    const id = inserted.rows[0]!.id;
    await queue.add('floor', { id, content }, { removeOnComplete: true });
    return reply.status(202).send({ id });
  },
);
app.get('/health', async () => ({ ok: true }));
await app.listen({ port, host });
process.stdout.write(`floor-server listening on ${host}:${port}\n`);

let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  const hard = setTimeout(() => process.exit(code || 1), 5_000);
  hard.unref();
  try {
    await app.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    await connection.quit().catch(() => {});
    await pool.end();
  } finally {
    process.exit(code);
  }
}
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));
process.stdin.on('end', () => void stop(0));
process.stdin.on('error', () => void stop(0));
process.stdin.resume();
