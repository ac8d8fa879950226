import { defineIsolationSuite } from './suite/define-suite.js';

/** The isolation suite (security/suite/define-suite.ts) for tenants moved from cluster to schema isolation. */
defineIsolationSuite('schema', { movedFrom: 'cluster' });
