import type pg from 'pg';

/** A setting of the whole system (migration 0007), or undefined when none was recorded. */
export async function readSystemSetting(pool: pg.Pool, name: string): Promise<string | undefined> {
  const result = await pool.query<{ value: string }>('select value from system_settings where name = $1', [name]);
  return result.rows[0]?.value;
}

/** Records a setting unless one is there already; answers the value in force (the first process's, when two race). */
export async function recordSystemSettingOnce(pool: pg.Pool, name: string, value: string): Promise<string> {
  const result = await pool.query<{ value: string }>(
    `with inserted as (insert into system_settings (name, value) values ($1, $2) on conflict (name) do nothing returning value)
     select value from inserted union all select value from system_settings where name = $1 limit 1`,
    [name, value],
  );
  return result.rows[0]?.value ?? value;
}

/** Sets a setting, whatever it was; answers the previous value. */
export async function writeSystemSetting(pool: pg.Pool, name: string, value: string): Promise<string | undefined> {
  const previous = await readSystemSetting(pool, name);
  await pool.query(
    `insert into system_settings (name, value) values ($1, $2)
     on conflict (name) do update set value = excluded.value, updated_at = now()`,
    [name, value],
  );
  return previous;
}
