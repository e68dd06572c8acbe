import type { TenancyRepository } from '../adapters/postgres/repositories/tenancy.repository.js';

export interface BootstrapResult {
  orgId: string;
  userId: string;
  token: string;
  operator: boolean;
}

/**
 * Creates (or reuses) the organization and the user as its admin, and issues a new token. With
 * `operator` the user also becomes a system operator; without it an existing flag is left as it is.
 */
export async function bootstrapOrganization(
  tenancy: TenancyRepository,
  orgName: string,
  email: string,
  options: { operator?: boolean } = {},
): Promise<BootstrapResult> {
  const org = (await tenancy.findOrganizationByName(orgName)) ?? (await tenancy.createOrganization(orgName));
  const user = await tenancy.upsertUser(email);
  await tenancy.setMembership(org.id, user.id, 'admin');
  const operator = options.operator ? ((await tenancy.setOperator(user.email, true))?.operator ?? false) : user.isOperator;
  const { token } = await tenancy.createToken(user.id, 'bootstrap');
  return { orgId: org.id, userId: user.id, token, operator };
}
