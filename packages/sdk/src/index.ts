export {
  type AdminClientOptions,
  type Credential,
  type FetchLike,
  type OperatorClientOptions,
  type PublicClientOptions,
  type RouterInputs,
  type RouterOutputs,
  type TenantClientOptions,
  type TenantryClient,
  createAdminClient,
  createClient,
  createOperatorClient,
  createPublicClient,
  createTenantClient,
} from './client.js';
export { TenantryError, type TenantryFieldIssue, isTenantryError, toTenantryError } from './errors.js';
