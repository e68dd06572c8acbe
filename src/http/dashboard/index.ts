import type { FastifyInstance } from 'fastify';
import { registerCreateDashboardSession } from './create-session.js';
import { registerDashboardPages } from './pages.js';
import type { DashboardSessions } from './sessions.js';

export { createDashboardSessions } from './sessions.js';

/** `/dashboard`: the operations page (it calls the API with the token it is given) and its Bull Board session. */
export function registerDashboard(app: FastifyInstance, sessions: DashboardSessions): void {
  registerDashboardPages(app);
  registerCreateDashboardSession(app, sessions);
}
