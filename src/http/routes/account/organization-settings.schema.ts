import { Type } from '@sinclair/typebox';
import { MultitaskStrategySchema } from '../../schemas/chat.js';

export const OrganizationSettingsSchema = Type.Object({
  multitaskStrategy: Type.Union(MultitaskStrategySchema.anyOf, {
    description: 'The default of every message that names no multitaskStrategy of its own: enqueue (the initial value), reject or interrupt',
  }),
});
