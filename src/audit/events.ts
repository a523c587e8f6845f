/** The audit log's events: in a module of their own, so the config can name them without loading the writer. */
export const AUDIT_EVENTS = ['started', 'detected', 'remediated', 'in_sync', 'planned', 'skipped', 'failed', 'alert', 'stopped'] as const;
export type AuditEvent = (typeof AUDIT_EVENTS)[number];
