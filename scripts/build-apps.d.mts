// Types of build-apps.mjs, for the TypeScript that imports it (the test support).
export type App = 'api' | 'worker';
export const APPS: readonly App[];
/** Where an app's bundle is. */
export function bundleOf(app: App): string;
/** Bundle the given apps (default: both). Resolves when every bundle is written. */
export function buildApps(apps?: readonly App[]): Promise<void>;
