import { defineIsolationSuite } from './suite/define-suite.js';

/** The isolation suite (security/suite/define-suite.ts) for tenants moved from schema to database isolation. */
defineIsolationSuite('database', { movedFrom: 'schema' });
