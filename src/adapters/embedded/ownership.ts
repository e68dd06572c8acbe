import pg from 'pg';

/**
 * Which process owns the embedded server, i.e. stops it when it ends: the one holding a session
 * advisory lock on a connection of its own. The lock ends with that connection, so a process that
 * was killed leaves no stale claim behind; the next process to ask takes it over.
 */

// Any constant works; it is only taken on the embedded server, in its `postgres` database.
const OWNER_LOCK_ID = 7_240_312;
const APPLICATION_PREFIX = 'honeyjar-embedded-owner:';
const SESSION_SETTLE_MS = 1_500;

export interface Ownership {
  /** Client sessions on the server of other processes: neither the claim's connection nor any named `ownApplicationName`. */
  otherSessions(ownApplicationName: string): Promise<number>;
  /** Lets go of the claim (closes its connection). */
  release(): Promise<void>;
}

export type Claim = { owner: true; ownership: Ownership } | { owner: false; ownerPid: number | undefined };

/** Takes ownership when nobody holds it; otherwise answers the owner's process id. */
export async function claimOwnership(maintenanceUrl: string): Promise<Claim> {
  const client = new pg.Client({ connectionString: maintenanceUrl, application_name: `${APPLICATION_PREFIX}${process.pid}`, connectionTimeoutMillis: 5_000 });
  // The server going away under the claim (stopped by another process) is not this process's error.
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [OWNER_LOCK_ID]);
    if (rows[0]?.locked) {
      let released: Promise<void> | undefined;
      return {
        owner: true,
        ownership: {
          async otherSessions(ownApplicationName) {
            // A session whose client just hung up (a command that just ended) is listed until its
            // backend has exited: give those a moment to go.
            const deadline = Date.now() + SESSION_SETTLE_MS;
            for (;;) {
              const result = await client.query<{ n: string }>(
                `select count(*) as n from pg_stat_activity
                  where backend_type = 'client backend' and pid <> pg_backend_pid() and application_name is distinct from $1`,
                [ownApplicationName],
              );
              const count = Number(result.rows[0]?.n ?? 0);
              if (count === 0 || Date.now() >= deadline) return count;
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
          },
          release: () => (released ??= client.end().catch(() => undefined)),
        },
      };
    }
    const holder = await client.query<{ application_name: string }>(
      `select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.objid = $1 and l.granted limit 1`,
      [OWNER_LOCK_ID],
    );
    const name = holder.rows[0]?.application_name ?? '';
    const ownerPid = name.startsWith(APPLICATION_PREFIX) ? Number(name.slice(APPLICATION_PREFIX.length)) : undefined;
    await client.end();
    return { owner: false, ownerPid: Number.isInteger(ownerPid) ? ownerPid : undefined };
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
}
