import type { TenancyRepository } from '../db/repositories/tenancy.repository.js';

export interface BootstrapResult {
  orgId: string;
  userId: string;
  token: string;
}

/** Creates (or reuses) the organization and the user as its admin, and issues a new token. */
export async function bootstrapOrganization(tenancy: TenancyRepository, orgName: string, email: string): Promise<BootstrapResult> {
  const org = (await tenancy.findOrganizationByName(orgName)) ?? (await tenancy.createOrganization(orgName));
  const user = await tenancy.upsertUser(email);
  await tenancy.setMembership(org.id, user.id, 'admin');
  const { token } = await tenancy.createToken(user.id, 'bootstrap');
  return { orgId: org.id, userId: user.id, token };
}
