import type { Incident } from './detectIncident.js';

/**
 * Whether an incident is another database's: its record names one (%d, dbname) and that is not
 * `database`. An incident that names none (an application log, a prefix without %d) may be anyone's:
 * it is checked, and only verified drift is acted on. The one rule for the daemon's routing
 * (daemon/Databases.route) and for replay.
 */
export function namesOtherDatabase(incident: Pick<Incident, 'database'>, database: string): boolean {
  return incident.database !== undefined && incident.database !== database;
}
