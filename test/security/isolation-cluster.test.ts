import { defineIsolationSuite } from './suite/define-suite.js';

/** The isolation suite (security/suite/define-suite.ts) for cluster tenants. */
defineIsolationSuite('cluster');
