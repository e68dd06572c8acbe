import { createHash, randomBytes } from 'node:crypto';
import { and, count, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from '../client.js';
import { apiTokens, memberships, organizations, users } from '../schema.js';

export type MembershipRole = 'admin' | 'member';

export interface TokenIdentity {
  tokenId: string;
  userId: string;
  revoked: boolean;
  /** The user's role in the organization asked for, or null when not a member. */
  role: MembershipRole | null;
}

const TOKEN_PREFIX = 'hj_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function createTenancyRepository(db: Db) {
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
      const [existing] = await db
        .select()
        .from(users)
        .where(sql`lower(${users.email}) = lower(${normalised})`);
      if (existing) return existing;
      const [created] = await db
        .insert(users)
        .values({ email: normalised })
        .onConflictDoNothing()
        .returning();
      if (created) return created;
      const [raced] = await db.select().from(users).where(sql`lower(${users.email}) = lower(${normalised})`);
      return raced!;
    },

    async setMembership(orgId: string, userId: string, role: MembershipRole): Promise<void> {
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

    /** Revokes by token id or by the token itself; answers whether a live token was revoked. */
    async revokeToken(tokenOrId: string): Promise<boolean> {
      const byId = /^[0-9a-f-]{36}$/i.test(tokenOrId);
      const rows = await db
        .update(apiTokens)
        .set({ revokedAt: new Date() })
        .where(
          and(byId ? eq(apiTokens.id, tokenOrId) : eq(apiTokens.tokenHash, hashToken(tokenOrId)), isNull(apiTokens.revokedAt)),
        )
        .returning({ id: apiTokens.id });
      return rows.length > 0;
    },

    /** One query per request: the token and, in the same round trip, the membership asked for. */
    async identify(token: string, orgId: string | undefined): Promise<TokenIdentity | undefined> {
      const [row] = await db
        .select({
          tokenId: apiTokens.id,
          userId: apiTokens.userId,
          revokedAt: apiTokens.revokedAt,
          role: memberships.role,
        })
        .from(apiTokens)
        .leftJoin(
          memberships,
          and(eq(memberships.userId, apiTokens.userId), orgId ? eq(memberships.orgId, orgId) : sql`false`),
        )
        .where(eq(apiTokens.tokenHash, hashToken(token)));
      if (!row) return undefined;
      return { tokenId: row.tokenId, userId: row.userId, revoked: row.revokedAt !== null, role: row.role };
    },

    async touchToken(tokenId: string): Promise<void> {
      await db.update(apiTokens).set({ lastUsedAt: new Date() }).where(eq(apiTokens.id, tokenId));
    },
  };
}

export type TenancyRepository = ReturnType<typeof createTenancyRepository>;
