import { and, eq } from 'drizzle-orm';
import type { Db } from '../client.js';
import { contactCache } from '../schema.js';
import type { RocketReachResult } from '../../../domain/stages/types.js';

/** RocketReach answers kept per organization (see the rocketreach stage's ContactCache). */
export function createContactCacheRepository(db: Db) {
  return {
    async get(orgId: string, key: string): Promise<RocketReachResult | undefined> {
      const [row] = await db
        .select({ result: contactCache.result })
        .from(contactCache)
        .where(and(eq(contactCache.orgId, orgId), eq(contactCache.key, key)));
      return row?.result as RocketReachResult | undefined;
    },
    async set(orgId: string, key: string, value: RocketReachResult): Promise<void> {
      await db
        .insert(contactCache)
        .values({ orgId, key, result: value })
        .onConflictDoUpdate({ target: [contactCache.orgId, contactCache.key], set: { result: value, createdAt: new Date() } });
    },
  };
}
