import { defineIsolationSuite } from './suite/define-suite.js';

/** The isolation suite (security/suite/define-suite.ts) for tenants moved from database to cluster isolation. */
defineIsolationSuite('cluster', { movedFrom: 'database' });
