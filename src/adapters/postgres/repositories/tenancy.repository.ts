import { randomBytes } from 'node:crypto';
import { and, count, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from '../client.js';
import { apiTokens, memberships, organizations, users } from '../schema.js';
import { hashToken, type MembershipRole, type TokenIdentity } from '../../../domain/tenancy/tenancy-store.js';

export { hashToken, type MembershipRole, type TokenIdentity };

const TOKEN_PREFIX = 'hj_';

/**
 * Every request identifies its token, so the answer is kept for a moment: at hundreds of requests
 * a second from one client the database answers once a second instead of each time. A revocation
 * made in this process clears the cache at once; one made elsewhere takes effect within the TTL.
 */
const IDENTITY_TTL_MS = 1_000;
const IDENTITY_CACHE_MAX = 10_000;

export function createTenancyRepository(db: Db, options: { identityTtlMs?: number } = {}) {
  const ttl = options.identityTtlMs ?? IDENTITY_TTL_MS;
  const identities = new Map<string, { at: number; identity: TokenIdentity | undefined }>();
  const lookups = new Map<string, Promise<TokenIdentity | undefined>>();
  return {
    async countOrganizations(): Promise<number> {
      const [row] = await db.select({ n: count() }).from(organizations);
      return row?.n ?? 0;
    },

    async findOrganization(id: string) {
      const [row] = await db.select().from(organizations).where(eq(organizations.id, id));
      return row;
    },

    async findOrganizationByName(name: string) {
      const [row] = await db.select().from(organizations).where(eq(organizations.name, name)).orderBy(organizations.createdAt).limit(1);
      return row;
    },

    async createOrganization(name: string) {
      const [row] = await db.insert(organizations).values({ name }).returning();
      return row!;
    },

    async upsertUser(email: string) {
      const normalised = email.trim();
      const [existing] = await db.select().from(users).where(sql`lower(${users.email}) = lower(${normalised})`);
      if (existing) return existing;
      const [created] = await db.insert(users).values({ email: normalised }).onConflictDoNothing().returning();
      if (created) return created;
      const [raced] = await db.select().from(users).where(sql`lower(${users.email}) = lower(${normalised})`);
      return raced!;
    },

    async setMembership(orgId: string, userId: string, role: MembershipRole): Promise<void> {
      identities.clear();
      lookups.clear();
      await db
        .insert(memberships)
        .values({ orgId, userId, role })
        .onConflictDoUpdate({ target: [memberships.orgId, memberships.userId], set: { role } });
    },

    /** Creates a token and returns it in clear, the only time it is ever available. */
    async createToken(userId: string, name?: string): Promise<{ id: string; token: string }> {
      const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
      const [row] = await db
        .insert(apiTokens)
        .values({ userId, tokenHash: hashToken(token), prefix: token.slice(0, 10), name: name ?? null })
        .returning({ id: apiTokens.id });
      return { id: row!.id, token };
    },

    /**
     * Makes the user with this email a system operator, or no longer one; undefined when no user
     * has it. Cached identities are dropped so the change holds at once in this process.
     */
    async setOperator(email: string, operator: boolean): Promise<{ userId: string; email: string; operator: boolean } | undefined> {
      identities.clear();
      lookups.clear();
      const [row] = await db
        .update(users)
        .set({ isOperator: operator })
        .where(sql`lower(${users.email}) = lower(${email.trim()})`)
        .returning({ userId: users.id, email: users.email, operator: users.isOperator });
      return row;
    },

    /** Revokes by token id or by the token itself; answers whether a live token was revoked. */
    async revokeToken(tokenOrId: string): Promise<boolean> {
      identities.clear();
      lookups.clear();
      const byId = /^[0-9a-f-]{36}$/i.test(tokenOrId);
      const rows = await db
        .update(apiTokens)
        .set({ revokedAt: new Date() })
        .where(and(byId ? eq(apiTokens.id, tokenOrId) : eq(apiTokens.tokenHash, hashToken(tokenOrId)), isNull(apiTokens.revokedAt)))
        .returning({ id: apiTokens.id });
      return rows.length > 0;
    },

    /** The token and, in the same round trip, the membership asked for (cached for a second). */
    async identify(token: string, orgId: string | undefined): Promise<TokenIdentity | undefined> {
      const hash = hashToken(token);
      const key = `${hash}:${orgId ?? ''}`;
      const now = Date.now();
      const cached = identities.get(key);
      if (cached && now - cached.at < ttl) return cached.identity;
      // The requests that find the entry expired together share one lookup.
      const pending = lookups.get(key);
      if (pending) return pending;
      const lookup = this.identifyUncached(hash, orgId).then(
        (identity) => {
          if (lookups.get(key) === lookup) lookups.delete(key);
          if (identities.size >= IDENTITY_CACHE_MAX) identities.clear();
          identities.set(key, { at: now, identity });
          return identity;
        },
        (error: unknown) => {
          if (lookups.get(key) === lookup) lookups.delete(key);
          throw error;
        },
      );
      lookups.set(key, lookup);
      return lookup;
    },

    async identifyUncached(tokenHash: string, orgId: string | undefined): Promise<TokenIdentity | undefined> {
      const [row] = await db
        .select({
          tokenId: apiTokens.id,
          userId: apiTokens.userId,
          revokedAt: apiTokens.revokedAt,
          role: memberships.role,
          operator: users.isOperator,
        })
        .from(apiTokens)
        .innerJoin(users, eq(users.id, apiTokens.userId))
        .leftJoin(memberships, and(eq(memberships.userId, apiTokens.userId), orgId ? eq(memberships.orgId, orgId) : sql`false`))
        .where(eq(apiTokens.tokenHash, tokenHash));
      if (!row) return undefined;
      return { tokenId: row.tokenId, userId: row.userId, revoked: row.revokedAt !== null, role: row.role, operator: row.operator };
    },

    /** Up to `limit` organizations the user belongs to (for a caller that names none and has only one). */
    async organizationsOf(userId: string, limit: number): Promise<Array<{ orgId: string; role: MembershipRole }>> {
      return db
        .select({ orgId: memberships.orgId, role: memberships.role })
        .from(memberships)
        .where(eq(memberships.userId, userId))
        .orderBy(memberships.orgId)
        .limit(limit);
    },

    async touchToken(tokenId: string): Promise<void> {
      await db.update(apiTokens).set({ lastUsedAt: new Date() }).where(eq(apiTokens.id, tokenId));
    },
  };
}

export type TenancyRepository = ReturnType<typeof createTenancyRepository>;
