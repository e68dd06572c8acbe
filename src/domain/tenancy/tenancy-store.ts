import { createHash } from 'node:crypto';

export type MembershipRole = 'admin' | 'member';

export interface TokenIdentity {
  tokenId: string;
  userId: string;
  revoked: boolean;
  /** The user's role in the organization asked for, or null when not a member. */
  role: MembershipRole | null;
  /** A system operator (Bull Board, process details, system alerts), whatever the organization. */
  operator: boolean;
}

/** A token is stored, and looked up, by this hash only. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** What authentication needs of tokens and memberships (implemented over PostgreSQL in src/adapters/postgres/repositories/tenancy.repository.ts). */
export interface TenancyStore {
  /** The token and the membership asked for (may be cached for a moment). */
  identify(token: string, orgId: string | undefined): Promise<TokenIdentity | undefined>;
  /** The same, by the token's hash and never from a cache. */
  identifyUncached(tokenHash: string, orgId: string | undefined): Promise<TokenIdentity | undefined>;
  /** Up to `limit` organizations the user belongs to. */
  organizationsOf(userId: string, limit: number): Promise<Array<{ orgId: string; role: MembershipRole }>>;
  touchToken(tokenId: string): Promise<void>;
}
