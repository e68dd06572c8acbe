import { eq } from 'drizzle-orm';
import type { Db } from '../client.js';
import { organizations } from '../schema.js';
import type { OrganizationSettingsStore } from '../../../domain/chat/multitask.js';

/** An organization's own settings, on its row. */
export function createOrganizationSettingsRepository(db: Db): OrganizationSettingsStore {
  return {
    async multitaskStrategy(orgId) {
      const [row] = await db.select({ value: organizations.multitaskStrategy }).from(organizations).where(eq(organizations.id, orgId));
      return row?.value;
    },

    async setMultitaskStrategy(orgId, strategy) {
      const rows = await db.update(organizations).set({ multitaskStrategy: strategy }).where(eq(organizations.id, orgId)).returning({ id: organizations.id });
      return rows.length > 0;
    },
  };
}
